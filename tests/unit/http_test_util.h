// The HTTP server on port 0 over a FakeEngine, and the independent clients
// that drive it: Python's http.client (tests/python/http_probe.py) and curl.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/serving/http_server.h"
#include "tests/unit/fake_engine.h"
#include "tests/unit/process_util.h"
#include "tests/unit/test_paths.h"

namespace tandem::testing {

using Json = nlohmann::json;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = Tokenizer::load_llama2c(bundled_tokenizer(), 512);
    ASSERT_TRUE(tok.ok()) << tok.status().to_string();
    tokenizer_ = std::make_unique<Tokenizer>(std::move(*tok));
  }
  void TearDown() override {
    if (server_) {
      EXPECT_TRUE(server_->stop(deadline_after(std::chrono::seconds(5))).ok());
    }
    server_.reset();
    engine_.reset();
  }

  serving::HttpServerOptions default_options() {
    serving::HttpServerOptions o;
    o.model_id = "stories";
    o.default_max_tokens = 8;
    o.max_tokens = 1000;
    o.threads = 2;  // more than one I/O thread, so the strands are what keeps a connection serial
    auto tmpl = ChatTemplate::from_name("chatml", "<s>", "</s>");
    EXPECT_TRUE(tmpl.ok());
    o.chat_template = *tmpl;
    return o;
  }

  void start(FakeEngine::Options engine_options = {}, std::optional<serving::HttpServerOptions> options = {}) {
    engine_ = std::make_unique<FakeEngine>(std::move(engine_options));
    auto server = serving::HttpServer::start(*engine_, *tokenizer_, options ? *options : default_options());
    ASSERT_TRUE(server.ok()) << server.status().to_string();
    server_ = std::move(*server);
    ASSERT_GT(server_->port(), 0);
  }

  // Debian's python3 when there is one: a pyenv shim in PATH costs a second per start.
  static std::string python3() { return ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"; }

  std::string port() const { return std::to_string(server_->port()); }

  // Each request's result as http_probe.py prints it.
  std::vector<Json> probe(const std::string& method, const std::string& path, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {python3(), source_dir() + "/tests/python/http_probe.py", port(), method, path};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const CommandResult r = run_command(argv, std::chrono::seconds(60));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<Json> out;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      Json j = Json::parse(line, nullptr, false);
      EXPECT_FALSE(j.is_discarded()) << line;
      out.push_back(std::move(j));
    }
    return out;
  }
  Json probe1(const std::string& method, const std::string& path, std::vector<std::string> extra = {}) {
    auto all = probe(method, path, std::move(extra));
    return all.empty() ? Json() : all[0];
  }
  Json post(const std::string& path, const std::string& body, std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), {"--body", body});
    return probe1("POST", path, std::move(extra));
  }

  CommandResult curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "30"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, std::chrono::seconds(60));
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + port() + path; }

  // A good request succeeds: the server kept serving after whatever came before.
  void expect_serving() {
    const Json r = post("/v1/completions", R"({"prompt":"Once","max_tokens":2})");
    EXPECT_EQ(r["status"], 200) << r.dump();
  }

  static Json body_json(const Json& r) { return Json::parse(r.value("body", std::string()), nullptr, false); }
  static void expect_error(const Json& r, int status, const std::string& param = "", const std::string& code = "") {
    EXPECT_EQ(r["status"], status) << r.dump();
    const Json b = body_json(r);
    ASSERT_TRUE(b.contains("error")) << r.dump();
    for (const char* key : {"message", "type", "param", "code"}) EXPECT_TRUE(b["error"].contains(key)) << key;
    EXPECT_TRUE(b["error"]["message"].is_string());
    if (!param.empty()) {
      EXPECT_EQ(b["error"]["param"], param) << r.dump();
    }
    if (!code.empty()) {
      EXPECT_EQ(b["error"]["code"], code) << r.dump();
    }
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<FakeEngine> engine_;
  std::unique_ptr<serving::HttpServer> server_;
};

}  // namespace tandem::testing
