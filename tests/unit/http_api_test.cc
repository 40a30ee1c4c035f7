// The HTTP API's pure parts: request validation, response shapes, SSE
// framing, UTF-8 hold-back, the key check and the Prometheus text (parsed back).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/formats/json_file.h"
#include "runtime/serving/http_internal.h"
#include "runtime/serving/http_metrics.h"
#include "runtime/serving/openai_api.h"
#include "runtime/stop_filter.h"

namespace tandem::serving {
namespace {

using Json = nlohmann::json;

ApiLimits limits() {
  ApiLimits l;
  l.model_id.assign(1, 'm');  // not = "m": GCC 12's false -Wrestrict (bug 105329) when inlined
  l.default_max_tokens = 16;
  l.max_tokens = 100;
  l.vocab_size = 512;
  return l;
}

ApiError refusal(ApiKind kind, const std::string& body) {
  ApiError e;
  auto r = parse_api_request(kind, body, limits(), &e);
  EXPECT_FALSE(r.ok()) << body;
  return e;
}

TEST(HttpApi, ParsesACompletionWithEveryField) {
  ApiError e;
  auto r = parse_api_request(ApiKind::kCompletion,
                             R"({"model":"m","prompt":"hi","max_tokens":7,"temperature":0.5,"top_p":0.9,"top_k":40,
                                 "seed":3,"stop":["a","b"],"n":1,"stream":true,"stream_options":{"include_usage":true},
                                 "user":"u","logit_bias":{},"frequency_penalty":0})",
                             limits(), &e);
  ASSERT_TRUE(r.ok()) << e.message;
  EXPECT_EQ(r->prompt, "hi");
  EXPECT_FALSE(r->prompt_is_tokens);
  EXPECT_EQ(*r->max_tokens, 7);
  EXPECT_FLOAT_EQ(r->sampler.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r->sampler.top_p, 0.9f);
  EXPECT_EQ(r->sampler.top_k, 40);
  EXPECT_EQ(r->sampler.seed, 3u);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
}

TEST(HttpApi, TokenPromptsAndDefaults) {
  ApiError e;
  auto r = parse_api_request(ApiKind::kCompletion, R"({"prompt":[1,5,9],"stop":"x","temperature":null})", limits(), &e);
  ASSERT_TRUE(r.ok()) << e.message;
  EXPECT_TRUE(r->prompt_is_tokens);
  EXPECT_EQ(r->prompt_tokens, (std::vector<int>{1, 5, 9}));
  EXPECT_FALSE(r->max_tokens.has_value());
  EXPECT_FLOAT_EQ(r->sampler.temperature, 1.0f);  // OpenAI's default; null means absent
  EXPECT_EQ(r->stop, std::vector<std::string>{"x"});
  EXPECT_EQ(refusal(ApiKind::kCompletion, R"({"prompt":[1,512]})").param, "prompt");
  EXPECT_EQ(refusal(ApiKind::kCompletion, R"({"prompt":[1,-1]})").param, "prompt");
  EXPECT_EQ(refusal(ApiKind::kCompletion, R"({"prompt":["a","b"]})").param, "prompt");
}

TEST(HttpApi, ChatMessagesAndAliases) {
  ApiError e;
  auto r = parse_api_request(ApiKind::kChat,
                             R"({"messages":[{"role":"developer","content":"be brief"},
                                 {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
                                 "max_completion_tokens":5})",
                             limits(), &e);
  ASSERT_TRUE(r.ok()) << e.message;
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[1].content, "ab");
  EXPECT_EQ(*r->max_tokens, 5);
}

TEST(HttpApi, RefusalsNameTheField) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"prompt":"x","max_tokens":"5"})", "max_tokens"},
      {R"({"prompt":"x","max_tokens":1.5})", "max_tokens"},
      {R"({"prompt":"x","max_tokens":0})", "max_tokens"},
      {R"({"prompt":"x","max_tokens":101})", "max_tokens"},
      {R"({"prompt":"x","temperature":"hot"})", "temperature"},
      {R"({"prompt":"x","temperature":2.5})", "temperature"},
      {R"({"prompt":"x","top_p":0})", "top_p"},
      {R"({"prompt":"x","top_p":1e-50})", "top_p"},  // 0 as the sampler's float
      {R"({"prompt":"x","top_k":-2})", "top_k"},
      {R"({"prompt":"x","seed":-1})", "seed"},
      {R"({"prompt":"x","n":2})", "n"},
      {R"({"prompt":"x","stream":"yes"})", "stream"},
      {R"({"prompt":"x","stop":[1]})", "stop"},
      {R"({"prompt":"x","stop":["a","b","c","d","e"]})", "stop"},
      {R"({"prompt":"x","stream_options":{"include_usage":true}})", "stream_options"},
      {R"({"prompt":"x","stream":true,"stream_options":{"include_usage":1}})", "stream_options.include_usage"},
      {R"({"prompt":"x","model":5})", "model"},
      {R"({"prompt":"x","user":5})", "user"},
      {R"({"prompt":7})", "prompt"},
      {R"({})", "prompt"},
  };
  // A stop string past kMaxStopBytes, alone or in a list (StopFilter's
  // work per token grows with it); one at the limit is taken.
  const std::string long_stop(kMaxStopBytes + 1, 'a'), limit_stop(kMaxStopBytes, 'a');
  using nlohmann::json;
  for (const json& stop : {json(long_stop), json::array({"b", long_stop})})
    EXPECT_EQ(refusal(ApiKind::kCompletion, json{{"prompt", "x"}, {"stop", stop}}.dump()).param, "stop");
  ApiError limit_error;
  auto at_limit = parse_api_request(ApiKind::kCompletion, json{{"prompt", "x"}, {"stop", limit_stop}}.dump(),
                                    limits(), &limit_error);
  ASSERT_TRUE(at_limit.ok()) << limit_error.message;
  EXPECT_EQ(at_limit->stop, std::vector<std::string>{limit_stop});
  for (const auto& [body, param] : cases) {
    const ApiError e = refusal(ApiKind::kCompletion, body);
    EXPECT_EQ(e.http_status, 400) << body;
    EXPECT_EQ(e.param, param) << body << ": " << e.message;
    EXPECT_EQ(e.type, "invalid_request_error");
  }
  EXPECT_EQ(refusal(ApiKind::kChat, R"({"model":"m"})").param, "messages");
  EXPECT_EQ(refusal(ApiKind::kChat, R"({"messages":"hi"})").param, "messages");
  EXPECT_EQ(refusal(ApiKind::kChat, R"({"messages":[]})").param, "messages");
  EXPECT_EQ(refusal(ApiKind::kChat, R"({"messages":[{"role":"tool","content":"x"}]})").param, "messages[0].role");
  EXPECT_EQ(refusal(ApiKind::kChat, R"({"messages":[{"role":"user","content":5}]})").param, "messages[0].content");
  EXPECT_EQ(refusal(ApiKind::kChat, R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})").param,
            "messages[0].content");
  const ApiError model = refusal(ApiKind::kCompletion, R"({"prompt":"x","model":"other"})");
  EXPECT_EQ(model.http_status, 404);
  EXPECT_EQ(model.code, "model_not_found");
}

TEST(HttpApi, MalformedAndHostileBodies) {
  for (const std::string body : {"", "{", "[1,2]", "\"s\"", "{\"prompt\": \"x\",}", "{\"prompt\":\"\xff\"}"}) {
    const ApiError e = refusal(ApiKind::kCompletion, body);
    EXPECT_EQ(e.http_status, 400) << body;
    EXPECT_TRUE(e.param.empty()) << body;
  }
  // Nesting that would exhaust a recursive parser's stack is refused first.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(json_file::nesting_depth(deep), 100000);
  EXPECT_NE(refusal(ApiKind::kCompletion, deep).message.find("nests deeper"), std::string::npos);
  EXPECT_EQ(json_file::nesting_depth(R"({"a":"[[[[", "b":[{}]})"), 3);  // brackets in strings do not count
  EXPECT_EQ(json_file::nesting_depth(R"({"a":"\"[[", "b":1})"), 1);
}

TEST(HttpApi, ErrorShapeIsOpenAIs) {
  ApiError e = invalid_request("bad", "n");
  const Json j = Json::parse(error_body(e));
  EXPECT_EQ(j["error"]["message"], "bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "n");
  EXPECT_TRUE(j["error"]["code"].is_null());
  EXPECT_EQ(error_from_status(OutOfRange("x")).code, "context_length_exceeded");
  EXPECT_EQ(error_from_status(OutOfRange("x")).http_status, 400);
  EXPECT_EQ(error_from_status(ResourceExhausted("x")).http_status, 429);
  EXPECT_EQ(error_from_status(Unavailable("x")).http_status, 503);
  EXPECT_EQ(error_from_status(Internal("x")).http_status, 500);
  EXPECT_EQ(error_from_status(InvalidArgument("x")).http_status, 400);
}

TEST(HttpApi, BudgetFollowsTheContext) {
  ApiRequest r;
  ApiError e;
  EXPECT_EQ(*budget_tokens(r, 10, 64, 16, &e), 16);  // default
  EXPECT_EQ(*budget_tokens(r, 60, 64, 16, &e), 4);   // default capped by the room left
  r.max_tokens = 54;
  EXPECT_EQ(*budget_tokens(r, 10, 64, 16, &e), 54);  // exactly fills the context
  r.max_tokens = 55;
  EXPECT_FALSE(budget_tokens(r, 10, 64, 16, &e).ok());
  EXPECT_EQ(e.code, "context_length_exceeded");
  EXPECT_EQ(e.http_status, 400);
  r.max_tokens.reset();
  EXPECT_FALSE(budget_tokens(r, 64, 64, 16, &e).ok());  // no room even for one token
}

TEST(HttpApi, Utf8HoldBack) {
  const std::string euro = "\xe2\x82\xac";  // U+20AC, three bytes
  EXPECT_EQ(utf8_complete_prefix("ab"), 2u);
  EXPECT_EQ(utf8_complete_prefix("a" + euro), 4u);
  EXPECT_EQ(utf8_complete_prefix("a" + euro.substr(0, 1)), 1u);
  EXPECT_EQ(utf8_complete_prefix("a" + euro.substr(0, 2)), 1u);
  EXPECT_EQ(utf8_complete_prefix("\xf0\x9f\x98"), 0u);  // 3 of an emoji's 4 bytes
  EXPECT_EQ(utf8_complete_prefix("\xf0\x9f\x98\x80"), 4u);
  EXPECT_EQ(utf8_complete_prefix(""), 0u);
}

TEST(HttpApi, StreamChunksAndSseFraming) {
  EXPECT_EQ(sse_event("{}"), "data: {}\n\n");
  EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
  ResponseMeta chat{ApiKind::kChat, make_response_id(ApiKind::kChat), 1700000000, "m"};
  EXPECT_EQ(chat.id.rfind("chatcmpl-", 0), 0u);
  Json role = Json::parse(role_chunk(chat, false));
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  EXPECT_FALSE(role.contains("usage"));
  Json text = Json::parse(text_chunk(chat, "hi", true));
  EXPECT_EQ(text["choices"][0]["delta"]["content"], "hi");
  EXPECT_TRUE(text["usage"].is_null());
  Json fin = Json::parse(finish_chunk(chat, FinishReason::kLength, false));
  EXPECT_EQ(fin["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(fin["choices"][0]["delta"].empty());
  Json usage = Json::parse(usage_chunk(chat, 3, 4));
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 7);
  ResponseMeta cmpl{ApiKind::kCompletion, make_response_id(ApiKind::kCompletion), 1, "m"};
  Json whole = Json::parse(response_body(cmpl, "abc", FinishReason::kStop, 2, 3));
  EXPECT_EQ(whole["object"], "text_completion");
  EXPECT_EQ(whole["choices"][0]["text"], "abc");
  EXPECT_EQ(whole["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(whole["usage"]["prompt_tokens"], 2);
  EXPECT_EQ(whole["usage"]["completion_tokens"], 3);
  // A broken byte from a model becomes U+FFFD instead of an exception.
  Json broken = Json::parse(text_chunk(cmpl, "a\xff", false));
  EXPECT_EQ(broken["choices"][0]["text"], "a\xef\xbf\xbd");
}

TEST(HttpApi, KeysAreCheckedWhole) {
  const std::vector<std::string> keys = {"k1", "secret-2"};
  EXPECT_TRUE(authorized("Bearer k1", keys));
  EXPECT_TRUE(authorized("Bearer secret-2", keys));
  EXPECT_FALSE(authorized("Bearer k", keys));
  EXPECT_FALSE(authorized("Bearer k12", keys));
  EXPECT_FALSE(authorized("Bearer ", keys));
  EXPECT_FALSE(authorized("k1", keys));
  EXPECT_FALSE(authorized("Basic k1", keys));
  EXPECT_FALSE(authorized("", keys));
}

// A parser for the text format's sample lines: name{labels} value.
std::map<std::string, double> parse_prometheus(const std::string& text, std::map<std::string, std::string>* types) {
  std::map<std::string, double> samples;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      (*types)[name] = type;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    EXPECT_NE(space, std::string::npos) << line;
    const std::string value = line.substr(space + 1);
    samples[line.substr(0, space)] = value == "+Inf" ? INFINITY : std::stod(value);
  }
  return samples;
}

TEST(HttpApi, PrometheusTextParsesBack) {
  HttpMetrics m;
  m.count_request(200);
  m.count_request(200);
  m.count_request(400);
  m.add_tokens(10, 20);
  m.observe_ttft(0.02);
  m.observe_ttft(0.3);
  m.observe_ttft(500);  // beyond the last bound: only +Inf
  m.observe_tpot(0.005);
  EngineMetrics e;
  e.queued = 2;
  e.running = 5;
  e.kv_blocks_total = 10;
  e.kv_blocks_used = 4;
  e.steps = 7;
  e.decode_tokens = 40;
  e.prefill_tokens = 96;
  e.argmax_steps = 5;
  e.step_seconds.observe(0.0009);
  e.step_seconds.observe(0.012);
  e.step_seconds.observe(0.012);
  e.step_seconds.observe(3);  // beyond 2 s: only +Inf
  std::map<std::string, std::string> types;
  const auto s = parse_prometheus(m.render(e), &types);
  EXPECT_EQ(s.at("tandem_requests_total{status=\"200\"}"), 2);
  EXPECT_EQ(s.at("tandem_requests_total{status=\"400\"}"), 1);
  EXPECT_EQ(s.at("tandem_prompt_tokens_total"), 10);
  EXPECT_EQ(s.at("tandem_generation_tokens_total"), 20);
  EXPECT_EQ(s.at("tandem_time_to_first_token_seconds_bucket{le=\"0.01\"}"), 0);
  EXPECT_EQ(s.at("tandem_time_to_first_token_seconds_bucket{le=\"0.025\"}"), 1);
  EXPECT_EQ(s.at("tandem_time_to_first_token_seconds_bucket{le=\"0.5\"}"), 2);
  EXPECT_EQ(s.at("tandem_time_to_first_token_seconds_bucket{le=\"120\"}"), 2);
  EXPECT_EQ(s.at("tandem_time_to_first_token_seconds_bucket{le=\"+Inf\"}"), 3);
  EXPECT_EQ(s.at("tandem_time_to_first_token_seconds_count"), 3);
  EXPECT_NEAR(s.at("tandem_time_to_first_token_seconds_sum"), 500.32, 1e-9);
  EXPECT_EQ(s.at("tandem_time_per_output_token_seconds_bucket{le=\"0.005\"}"), 1);  // le: on the bound counts
  EXPECT_EQ(s.at("tandem_queue_depth"), 2);
  EXPECT_EQ(s.at("tandem_running_sequences"), 5);
  EXPECT_EQ(s.at("tandem_kv_cache_blocks_used"), 4);
  EXPECT_EQ(s.at("tandem_kv_cache_blocks_free"), 6);
  EXPECT_EQ(types.at("tandem_requests_total"), "counter");
  EXPECT_EQ(types.at("tandem_time_to_first_token_seconds"), "histogram");
  EXPECT_EQ(types.at("tandem_queue_depth"), "gauge");
  EXPECT_EQ(s.at("tandem_engine_steps_total"), 7);
  EXPECT_EQ(s.at("tandem_engine_decode_tokens_total"), 40);
  EXPECT_EQ(s.at("tandem_engine_prefill_tokens_total"), 96);
  EXPECT_EQ(s.at("tandem_engine_argmax_steps_total"), 5);
  EXPECT_EQ(s.at("tandem_engine_step_seconds_bucket{le=\"0.001\"}"), 1);
  EXPECT_EQ(s.at("tandem_engine_step_seconds_bucket{le=\"0.01\"}"), 1);
  EXPECT_EQ(s.at("tandem_engine_step_seconds_bucket{le=\"0.015\"}"), 3);
  EXPECT_EQ(s.at("tandem_engine_step_seconds_bucket{le=\"2\"}"), 3);
  EXPECT_EQ(s.at("tandem_engine_step_seconds_bucket{le=\"+Inf\"}"), 4);
  EXPECT_EQ(s.at("tandem_engine_step_seconds_count"), 4);
  EXPECT_NEAR(s.at("tandem_engine_step_seconds_sum"), 3.0249, 1e-9);
  EXPECT_EQ(types.at("tandem_engine_steps_total"), "counter");
  EXPECT_EQ(types.at("tandem_engine_decode_tokens_total"), "counter");
  EXPECT_EQ(types.at("tandem_engine_step_seconds"), "histogram");
  EXPECT_EQ(prometheus_number(0.1), "0.1");
  EXPECT_EQ(prometheus_number(INFINITY), "+Inf");
}

}  // namespace
}  // namespace tandem::serving
