// Response bodies, stream chunks and errors in OpenAI's shapes, and the small
// text helpers (UTF-8 boundaries, SSE framing) the server streams with.
#include <nlohmann/json.hpp>
#include <random>

#include "runtime/serving/openai_api.h"

namespace tandem::serving {
namespace {

using Json = nlohmann::json;

// Text from a model can be any bytes; a stray invalid byte becomes U+FFFD
// rather than an exception (nlohmann throws on invalid UTF-8 by default).
std::string dump(const Json& json) { return json.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json nullable(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

Json usage(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

Json envelope(const ResponseMeta& meta, bool chunk) {
  const bool chat = meta.kind == ApiKind::kChat;
  return {{"id", meta.id},
          {"object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
          {"created", meta.created},
          {"model", meta.model}};
}

Json choice(const ResponseMeta& meta, Json delta_or_text, const Json& finish) {
  Json c = {{"index", 0}};
  if (meta.kind == ApiKind::kChat) {
    c["delta"] = std::move(delta_or_text);
  } else {
    c["text"] = std::move(delta_or_text);
  }
  c["logprobs"] = nullptr;
  c["finish_reason"] = finish;
  return c;
}

std::string chunk(const ResponseMeta& meta, Json choice_json, bool include_usage) {
  Json j = envelope(meta, true);
  j["choices"] = Json::array({std::move(choice_json)});
  if (include_usage) j["usage"] = nullptr;
  return dump(j);
}

}  // namespace

ApiError invalid_request(std::string message, std::string param, std::string code) {
  ApiError e;
  e.http_status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

std::string error_body(const ApiError& error) {
  return dump({{"error",
                {{"message", error.message},
                 {"type", error.type},
                 {"param", nullable(error.param)},
                 {"code", nullable(error.code)}}}});
}

ApiError error_from_status(const Status& status) {
  ApiError e;
  e.message = status.message();
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      e.http_status = 400;
      break;
    case StatusCode::kOutOfRange:  // the engine's word for "does not fit the context"
      e.http_status = 400;
      e.code = "context_length_exceeded";
      break;
    case StatusCode::kResourceExhausted:
      e.http_status = 429;
      e.type = "rate_limit_error";
      e.code = "queue_full";
      break;
    case StatusCode::kUnavailable:
      e.http_status = 503;
      e.type = "server_error";
      e.code = "unavailable";
      break;
    default:
      e.http_status = 500;
      e.type = "server_error";
      break;
  }
  return e;
}

size_t utf8_complete_prefix(std::string_view text) {
  // Look back over at most 3 bytes for the start of the last sequence.
  const size_t n = text.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for the lead
    size_t need = 1;
    if ((c & 0xE0) == 0xC0) {
      need = 2;
    } else if ((c & 0xF0) == 0xE0) {
      need = 3;
    } else if ((c & 0xF8) == 0xF0) {
      need = 4;
    }
    // An ASCII or invalid lead byte never waits for more.
    return back < need ? n - back : n;
  }
  return n;  // only continuation bytes: invalid, nothing to wait for
}

std::string sse_event(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  out += "data: ";
  out += payload;
  out += "\n\n";
  return out;
}

std::string make_response_id(ApiKind kind) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-";
  for (int i = 0; i < 24; ++i) id += kHex[rng() & 15];
  return id;
}

std::string_view finish_reason_text(FinishReason reason) {
  return reason == FinishReason::kLength ? "length" : "stop";
}

std::string response_body(const ResponseMeta& meta, std::string_view text, FinishReason finish,
                          int64_t prompt_tokens, int64_t completion_tokens) {
  Json j = envelope(meta, false);
  Json c = {{"index", 0}};
  if (meta.kind == ApiKind::kChat) {
    c["message"] = {{"role", "assistant"}, {"content", std::string(text)}};
  } else {
    c["text"] = std::string(text);
  }
  c["logprobs"] = nullptr;
  c["finish_reason"] = std::string(finish_reason_text(finish));
  j["choices"] = Json::array({std::move(c)});
  j["usage"] = usage(prompt_tokens, completion_tokens);
  return dump(j);
}

std::string role_chunk(const ResponseMeta& meta, bool include_usage) {
  return chunk(meta, choice(meta, {{"role", "assistant"}, {"content", ""}}, nullptr), include_usage);
}

std::string text_chunk(const ResponseMeta& meta, std::string_view text, bool include_usage) {
  Json content = meta.kind == ApiKind::kChat ? Json{{"content", std::string(text)}} : Json(std::string(text));
  return chunk(meta, choice(meta, std::move(content), nullptr), include_usage);
}

std::string finish_chunk(const ResponseMeta& meta, FinishReason finish, bool include_usage) {
  Json empty = meta.kind == ApiKind::kChat ? Json::object() : Json("");
  return chunk(meta, choice(meta, std::move(empty), std::string(finish_reason_text(finish))), include_usage);
}

std::string usage_chunk(const ResponseMeta& meta, int64_t prompt_tokens, int64_t completion_tokens) {
  Json j = envelope(meta, true);
  j["choices"] = Json::array();
  j["usage"] = usage(prompt_tokens, completion_tokens);
  return dump(j);
}

namespace {
Json model_json(const std::string& model_id, int64_t created) {
  return {{"id", model_id}, {"object", "model"}, {"created", created}, {"owned_by", "tandem"}};
}
}  // namespace

std::string model_body(const std::string& model_id, int64_t created) { return dump(model_json(model_id, created)); }

std::string models_body(const std::string& model_id, int64_t created) {
  return dump({{"object", "list"}, {"data", Json::array({model_json(model_id, created)})}});
}

}  // namespace tandem::serving
