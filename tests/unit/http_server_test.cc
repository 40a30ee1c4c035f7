// The HTTP server through real clients (Python's http.client, curl): the
// routes, whole and streamed generations, and cancellation when a client
// leaves mid-stream.
#include <sstream>

#include "tests/unit/http_test_util.h"

namespace tandem::testing {
namespace {

std::string pieces(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    // Appended piecewise: GCC 12's -Wrestrict misfires on "p" + std::string.
    s += 'p';
    s += std::to_string(i);
    s += ' ';
  }
  return s;
}

TEST_F(HttpServerTest, Routes) {
  start();
  EXPECT_EQ(probe1("GET", "/health")["status"], 200);
  const Json models = probe1("GET", "/v1/models");
  EXPECT_EQ(models["status"], 200);
  const Json list = body_json(models);
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], "stories");
  EXPECT_EQ(list["data"][0]["object"], "model");
  EXPECT_EQ(body_json(probe1("GET", "/v1/models/stories"))["id"], "stories");
  expect_error(probe1("GET", "/v1/models/other"), 404, "model", "model_not_found");
  expect_error(probe1("GET", "/nope"), 404);
  expect_error(probe1("GET", "/v1/nope"), 404);
  const Json wrong_method = probe1("GET", "/v1/completions");
  expect_error(wrong_method, 405);
  EXPECT_EQ(wrong_method["headers"]["allow"], "POST");
  expect_error(probe1("POST", "/health", {"--body", "{}"}), 405);
  expect_error(post("/v1/completions", R"({"prompt":"x","model":"gpt-4"})"), 404, "model", "model_not_found");
}

TEST_F(HttpServerTest, CompletionWholeAndKeepAlive) {
  start();
  const std::string prompt = "Once upon a time";
  // Two requests on one connection: keep-alive works.
  const auto results = probe("POST", "/v1/completions",
                             {"--repeat", "2", "--body", R"({"model":"stories","prompt":")" + prompt +
                                                             R"(","max_tokens":5,"temperature":0,"seed":1})"});
  ASSERT_EQ(results.size(), 2u);
  for (const Json& r : results) {
    ASSERT_EQ(r["status"], 200) << r.dump();
    const Json b = body_json(r);
    EXPECT_EQ(b["object"], "text_completion");
    EXPECT_EQ(b["model"], "stories");
    EXPECT_EQ(b["id"].get<std::string>().rfind("cmpl-", 0), 0u);
    EXPECT_TRUE(b["created"].is_number_integer());
    EXPECT_EQ(b["choices"][0]["text"], pieces(5));
    EXPECT_EQ(b["choices"][0]["finish_reason"], "length");
    const auto expected = tokenizer_->encode(prompt, true, false);
    EXPECT_EQ(b["usage"]["prompt_tokens"], expected.size());
    EXPECT_EQ(b["usage"]["completion_tokens"], 5);
    EXPECT_EQ(b["usage"]["total_tokens"], expected.size() + 5);
  }
  const auto submitted = engine_->submitted();
  ASSERT_EQ(submitted.size(), 2u);
  EXPECT_EQ(submitted[0].prompt_tokens, tokenizer_->encode(prompt, true, false));
  EXPECT_EQ(submitted[0].max_tokens, 5);
  EXPECT_EQ(submitted[0].sampler.temperature, 0.0f);
  // Token-id prompts are passed as given; the default budget applies.
  const Json ids = post("/v1/completions", R"({"prompt":[1,300,301],"stop":["zz"]})");
  EXPECT_EQ(body_json(ids)["choices"][0]["text"], pieces(8));
  EXPECT_EQ(engine_->submitted().back().prompt_tokens, (std::vector<int>{1, 300, 301}));
  EXPECT_EQ(engine_->submitted().back().stop, std::vector<std::string>{"zz"});
}

TEST_F(HttpServerTest, ChatWholeUsesTheTemplate) {
  FakeEngine::Options eo;
  eo.context = 256;   // the chatml markers alone take ~60 of the bundled vocabulary's tokens
  eo.stop_after = 3;  // as if the model ended its turn
  start(eo);
  const Json r = post("/v1/chat/completions",
                      R"({"messages":[{"role":"system","content":"Be kind."},{"role":"user","content":"Hi"}],
                          "max_completion_tokens":10})");
  ASSERT_EQ(r["status"], 200) << r.dump();
  const Json b = body_json(r);
  EXPECT_EQ(b["object"], "chat.completion");
  EXPECT_EQ(b["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(b["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(b["choices"][0]["message"]["content"], pieces(3));
  EXPECT_EQ(b["choices"][0]["finish_reason"], "stop");
  // The prompt is the chatml rendering, markers included, written out here
  // independently of chat_template.cc.
  const std::string rendered =
      "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(engine_->submitted().at(0).prompt_tokens, tokenizer_->encode(rendered, true, false, true));
  EXPECT_EQ(engine_->submitted().at(0).max_tokens, 10);
}

TEST_F(HttpServerTest, ChatStreamThroughPython) {
  start();
  const Json r = post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,
                                                  "stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_EQ(r["status"], 200) << r.dump();
  EXPECT_EQ(r["headers"]["content-type"], "text/event-stream");
  const auto& events = r["events"];
  ASSERT_GE(events.size(), 4u) << r.dump();
  EXPECT_EQ(events.back(), "[DONE]");
  const Json first = Json::parse(events[0].get<std::string>());
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string content;
  std::string finish;
  Json usage;
  for (size_t i = 1; i + 1 < events.size(); ++i) {
    const Json c = Json::parse(events[i].get<std::string>());
    EXPECT_EQ(c["id"], first["id"]);
    if (c["choices"].empty()) {
      usage = c["usage"];
      continue;
    }
    EXPECT_TRUE(c["usage"].is_null());
    content += c["choices"][0]["delta"].value("content", "");
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(content, pieces(4));
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(usage["completion_tokens"], 4);
  EXPECT_EQ(usage["total_tokens"], usage["prompt_tokens"].get<int>() + 4);
}

TEST_F(HttpServerTest, CompletionStreamThroughCurl) {
  FakeEngine::Options eo;
  eo.script = {"caf", "\xc3", "\xa9 ", "ok"};  // "café ok": one character split over two pieces
  start(eo);
  const CommandResult r = curl({"-N", url("/v1/completions"), "-H", "Content-Type: application/json", "-d",
                                R"({"prompt":"Once","max_tokens":4,"stream":true})"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_GE(r.out.size(), 14u);
  EXPECT_EQ(r.out.substr(r.out.size() - 14), "data: [DONE]\n\n");
  std::istringstream in(r.out);
  std::string text, finish;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("data: {", 0) != 0) continue;
    const Json c = Json::parse(line.substr(6));
    EXPECT_EQ(c["object"], "text_completion");
    text += c["choices"][0]["text"].get<std::string>();  // invalid UTF-8 would have failed the parse
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, "caf\xc3\xa9 ok");
  EXPECT_EQ(finish, "length");
}

TEST_F(HttpServerTest, ClientLeavingMidStreamCancels) {
  FakeEngine::Options eo;
  eo.context = 4096;
  eo.piece_interval = std::chrono::milliseconds(20);
  start(eo);
  const Json r = post("/v1/completions", R"({"prompt":[1],"max_tokens":900,"stream":true})",
                      {"--disconnect-after", "3"});
  ASSERT_EQ(r["status"], 200) << r.dump();
  EXPECT_EQ(r["events"].size(), 3u);
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (engine_->cancelled().empty() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine_->cancelled(), std::vector<serving::RequestId>{1});
  while (engine_->running() > 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine_->running(), 0u);
  // The tokens computed for the departed client are counted (the engine's
  // last event reached nobody's connection).
  const Json m = probe1("GET", "/metrics");
  const std::string text = m.value("body", std::string());
  const size_t at = text.find("\ntandem_generation_tokens_total ");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_GE(std::stoll(text.substr(at + 32)), 3) << text.substr(at, 40);
  expect_serving();
}

TEST_F(HttpServerTest, EngineErrorsMidStreamAndStop) {
  FakeEngine::Options eo;
  eo.fail_after = 2;
  start(eo);
  // Whole: the engine's failure is a 500 in OpenAI's shape.
  expect_error(post("/v1/completions", R"({"prompt":"Once","max_tokens":5})"), 500);
  // Streamed: past the 200 the error travels as an event, then [DONE].
  const Json s = post("/v1/completions", R"({"prompt":"Once","max_tokens":5,"stream":true})");
  ASSERT_EQ(s["status"], 200);
  ASSERT_GE(s["events"].size(), 2u);
  EXPECT_EQ(s["events"].back(), "[DONE]");
  EXPECT_TRUE(Json::parse(s["events"][s["events"].size() - 2].get<std::string>()).contains("error"));
  // Refusals at submit map to their statuses.
  engine_->refuse_next(ResourceExhausted("queue full"));
  expect_error(post("/v1/completions", R"({"prompt":"Once"})"), 429, "", "queue_full");
  engine_->refuse_next(Unavailable("draining"));
  expect_error(post("/v1/completions", R"({"prompt":"Once"})"), 503);
  EXPECT_EQ(probe1("GET", "/health")["status"], 200);
  EXPECT_TRUE(server_->stop(deadline_after(std::chrono::seconds(5))).ok());
  server_.reset();
}

}  // namespace
}  // namespace tandem::testing
