// Request bodies -> ApiRequest: every field the API knows, type-checked and
// range-checked, each refusal naming the field. nlohmann's exceptions stop here.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/formats/json_file.h"
#include "runtime/serving/openai_api.h"
#include "runtime/stop_filter.h"

namespace tandem::serving {
namespace {

using Json = nlohmann::json;

ApiError wrong_type(const std::string& field, std::string_view expected) {
  return invalid_request("'" + field + "' must be " + std::string(expected), field);
}

// The field's value, or nullptr when absent or null (both mean "default").
const Json* field(const Json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

bool get_int(const Json& body, const char* name, std::optional<int64_t>& out, ApiError& error) {
  const Json* v = field(body, name);
  if (v == nullptr) return true;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      error = invalid_request("'" + std::string(name) + "' is out of range", name);
      return false;
    }
    out = static_cast<int64_t>(u);
    return true;
  }
  if (!v->is_number_integer()) {
    error = wrong_type(name, "an integer");
    return false;
  }
  out = v->get<int64_t>();
  return true;
}

bool get_number(const Json& body, const char* name, std::optional<double>& out, ApiError& error) {
  const Json* v = field(body, name);
  if (v == nullptr) return true;
  if (!v->is_number()) {
    error = wrong_type(name, "a number");
    return false;
  }
  out = v->get<double>();
  return true;
}

bool get_bool(const Json& body, const char* name, bool& out, ApiError& error) {
  const Json* v = field(body, name);
  if (v == nullptr) return true;
  if (!v->is_boolean()) {
    error = wrong_type(name, "a boolean");
    return false;
  }
  out = v->get<bool>();
  return true;
}

// A message's content: a string, or OpenAI's array of parts of which only
// {"type": "text", "text": ...} parts carry text a text model can read.
bool get_content(const Json& message, const std::string& where, std::string& out, ApiError& error) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) {
    out.clear();  // an assistant turn may have no content
    return true;
  }
  if (it->is_string()) {
    out = it->get<std::string>();
    return true;
  }
  if (!it->is_array()) {
    error = wrong_type(where + ".content", "a string or an array of text parts");
    return false;
  }
  out.clear();
  for (const Json& part : *it) {
    const auto type = part.is_object() ? part.find("type") : part.end();
    const auto text = part.is_object() ? part.find("text") : part.end();
    if (!part.is_object() || type == part.end() || *type != "text" || text == part.end() || !text->is_string()) {
      error = invalid_request("'" + where + ".content': only {\"type\": \"text\", \"text\": \"...\"} parts are "
                              "supported (this model reads text only)",
                              where + ".content");
      return false;
    }
    out += text->get<std::string>();
  }
  return true;
}

bool parse_messages(const Json& body, ApiRequest& out, ApiError& error) {
  const Json* v = field(body, "messages");
  if (v == nullptr) {
    error = invalid_request("'messages' is required", "messages");
    return false;
  }
  if (!v->is_array()) {
    error = wrong_type("messages", "an array of messages");
    return false;
  }
  if (v->empty()) {
    error = invalid_request("'messages' must hold at least one message", "messages");
    return false;
  }
  for (size_t i = 0; i < v->size(); ++i) {
    const Json& m = (*v)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) {
      error = wrong_type(where, "an object with 'role' and 'content'");
      return false;
    }
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      error = invalid_request("'" + where + ".role' is required and must be a string", where + ".role");
      return false;
    }
    ChatMessage message;
    message.role = role->get<std::string>();
    // OpenAI's newer name for the system role.
    if (message.role == "developer") message.role = "system";
    if (message.role != "system" && message.role != "user" && message.role != "assistant") {
      error = invalid_request("'" + where + ".role' must be system, developer, user or assistant, got '" +
                                  message.role + "'",
                              where + ".role");
      return false;
    }
    if (!get_content(m, where, message.content, error)) return false;
    out.messages.push_back(std::move(message));
  }
  return true;
}

bool parse_prompt(const Json& body, const ApiLimits& limits, ApiRequest& out, ApiError& error) {
  const Json* v = field(body, "prompt");
  if (v == nullptr) {
    error = invalid_request("'prompt' is required", "prompt");
    return false;
  }
  if (v->is_string()) {
    out.prompt = v->get<std::string>();
    return true;
  }
  if (!v->is_array()) {
    error = wrong_type("prompt", "a string or an array of token ids");
    return false;
  }
  // A batch of prompts (an array of strings or of token arrays) would be
  // several choices: one prompt per request here, as n is 1.
  if (v->size() == 1 && (*v)[0].is_string()) {
    out.prompt = (*v)[0].get<std::string>();
    return true;
  }
  if (v->empty()) {
    error = invalid_request("'prompt' must not be an empty array", "prompt");
    return false;
  }
  out.prompt_is_tokens = true;
  for (const Json& t : *v) {
    if (!t.is_number_integer()) {
      error = invalid_request("'prompt' must be a string, a one-string array or an array of token ids (one "
                              "prompt per request)",
                              "prompt");
      return false;
    }
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id >= limits.vocab_size) {
      error = invalid_request("'prompt' holds token id " + std::to_string(id) + ", outside the vocabulary [0, " +
                                  std::to_string(limits.vocab_size) + ")",
                              "prompt");
      return false;
    }
    out.prompt_tokens.push_back(static_cast<int>(id));
  }
  return true;
}

bool add_stop(const std::string& s, ApiRequest& out, ApiError& error) {
  if (s.size() > kMaxStopBytes) {
    error = invalid_request("a stop string is " + std::to_string(s.size()) + " bytes; at most " +
                                std::to_string(kMaxStopBytes) + " are allowed",
                            "stop");
    return false;
  }
  if (!s.empty()) out.stop.push_back(s);
  return true;
}

bool parse_stop(const Json& body, ApiRequest& out, ApiError& error) {
  const Json* v = field(body, "stop");
  if (v == nullptr) return true;
  if (v->is_string()) return add_stop(v->get<std::string>(), out, error);
  if (!v->is_array()) {
    error = wrong_type("stop", "a string or an array of strings");
    return false;
  }
  constexpr size_t kMaxStops = 4;  // OpenAI's limit
  if (v->size() > kMaxStops) {
    error = invalid_request("'stop' holds at most 4 strings", "stop");
    return false;
  }
  for (const Json& s : *v) {
    if (!s.is_string()) {
      error = wrong_type("stop", "a string or an array of strings");
      return false;
    }
    if (!add_stop(s.get<std::string>(), out, error)) return false;
  }
  return true;
}

bool parse_sampling(const Json& body, ApiRequest& out, ApiError& error) {
  std::optional<double> temperature, top_p;
  std::optional<int64_t> top_k, seed, n;
  if (!get_number(body, "temperature", temperature, error) || !get_number(body, "top_p", top_p, error) ||
      !get_int(body, "top_k", top_k, error) || !get_int(body, "seed", seed, error) || !get_int(body, "n", n, error)) {
    return false;
  }
  if (n && *n != 1) {
    error = invalid_request("'n' must be 1 (one choice per request), got " + std::to_string(*n), "n");
    return false;
  }
  // OpenAI's defaults: temperature 1, top_p 1.
  const double t = temperature.value_or(1.0);
  if (!(std::isfinite(t) && t >= 0 && t <= 2)) {
    error = invalid_request("'temperature' must be in [0, 2]", "temperature");
    return false;
  }
  const double p = top_p.value_or(1.0);
  // Checked as the float the sampler keeps: 1e-50 would reach it as 0.
  if (!(static_cast<float>(p) > 0 && p <= 1)) {
    error = invalid_request("'top_p' must be in (0, 1]", "top_p");
    return false;
  }
  // -1 is vLLM's spelling of "off", as is 0 here.
  if (top_k && (*top_k < -1 || *top_k > std::numeric_limits<int>::max())) {
    error = invalid_request("'top_k' must be -1 or 0 (off) or a positive count", "top_k");
    return false;
  }
  if (seed && *seed < 0) {
    error = invalid_request("'seed' must be >= 0", "seed");
    return false;
  }
  const int k = top_k && *top_k > 0 ? static_cast<int>(*top_k) : 0;
  out.sampler = make_sampler_config(static_cast<float>(t), static_cast<float>(p), k, seed.value_or(-1));
  return true;
}

bool parse_body(ApiKind kind, const Json& body, const ApiLimits& limits, ApiRequest& out, ApiError& error) {
  out.kind = kind;
  if (const Json* m = field(body, "model")) {
    if (!m->is_string()) {
      error = wrong_type("model", "a string");
      return false;
    }
    out.model = m->get<std::string>();
    if (out.model != limits.model_id) {
      error = invalid_request("The model '" + out.model + "' does not exist (this server serves '" +
                                  limits.model_id + "')",
                              "model", "model_not_found");
      error.http_status = 404;
      return false;
    }
  }
  if (kind == ApiKind::kChat ? !parse_messages(body, out, error) : !parse_prompt(body, limits, out, error)) {
    return false;
  }
  // max_completion_tokens is the chat API's newer name; either may be sent.
  std::optional<int64_t> max_tokens, max_completion_tokens;
  if (!get_int(body, "max_tokens", max_tokens, error) ||
      !get_int(body, "max_completion_tokens", max_completion_tokens, error)) {
    return false;
  }
  const char* name = max_completion_tokens ? "max_completion_tokens" : "max_tokens";
  out.max_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;
  if (out.max_tokens && (*out.max_tokens < 1 || *out.max_tokens > limits.max_tokens)) {
    error = invalid_request("'" + std::string(name) + "' must be in [1, " + std::to_string(limits.max_tokens) +
                                "], got " + std::to_string(*out.max_tokens),
                            name);
    return false;
  }
  if (!parse_sampling(body, out, error) || !parse_stop(body, out, error)) return false;
  if (!get_bool(body, "stream", out.stream, error)) return false;
  if (const Json* so = field(body, "stream_options")) {
    if (!so->is_object()) {
      error = wrong_type("stream_options", "an object");
      return false;
    }
    if (!out.stream) {
      error = invalid_request("'stream_options' is only allowed when 'stream' is true", "stream_options");
      return false;
    }
    if (!get_bool(*so, "include_usage", out.include_usage, error)) {
      error.param = "stream_options.include_usage";
      error.message = "'stream_options.include_usage' must be a boolean";
      return false;
    }
  }
  if (const Json* user = field(body, "user"); user != nullptr && !user->is_string()) {
    error = wrong_type("user", "a string");
    return false;
  }
  return true;
}

}  // namespace

Result<ApiRequest> parse_api_request(ApiKind kind, std::string_view body, const ApiLimits& limits,
                                     ApiError* error) {
  ApiError local;
  ApiError& e = error != nullptr ? *error : local;
  if (json_file::nesting_depth(body) > json_file::kMaxDepth) {
    e = invalid_request("the body nests deeper than " + std::to_string(json_file::kMaxDepth) + " levels");
    return InvalidArgument(e.message);
  }
  try {
    const Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded()) {
      e = invalid_request("the body is not valid JSON");
      return InvalidArgument(e.message);
    }
    if (!json.is_object()) {
      e = invalid_request("the body must be a JSON object");
      return InvalidArgument(e.message);
    }
    ApiRequest out;
    if (!parse_body(kind, json, limits, out, e)) return InvalidArgument(e.message);
    return out;
  } catch (const std::exception& ex) {  // nlohmann's, should a check above have missed a case
    e = invalid_request(std::string("the body could not be read: ") + ex.what());
    return InvalidArgument(e.message);
  }
}

}  // namespace tandem::serving
