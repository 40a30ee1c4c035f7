// The HTTP server's refusals through real clients, each followed by a good
// request (the server keeps serving), API keys, the body limit, a slow-header
// client, and /metrics parsed back.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <sstream>

#include "tests/unit/http_test_util.h"

namespace tandem::testing {
namespace {

TEST_F(HttpServerTest, BadRequestsGetOpenAIErrors) {
  start();
  struct Case {
    std::string path, body, param, code;
    int status;
  };
  const std::string long_prompt = [] {
    std::string ids = "[1";
    for (int i = 0; i < 70; ++i) ids += ",5";
    return ids + "]";
  }();
  const Case cases[] = {
      {"/v1/completions", "{not json", "", "", 400},
      {"/v1/completions", R"({"prompt":"x","max_tokens":"many"})", "max_tokens", "", 400},
      {"/v1/chat/completions", R"({"model":"stories"})", "messages", "", 400},
      {"/v1/completions", R"({"prompt":"x","n":2})", "n", "", 400},
      {"/v1/completions", R"({"prompt":"x","temperature":-1})", "temperature", "", 400},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"stream":1})", "stream", "", 400},
      // The fake's context is 64 positions.
      {"/v1/completions", R"({"prompt":)" + long_prompt + "}", "prompt", "context_length_exceeded", 400},
      {"/v1/completions", R"({"prompt":"x","max_tokens":64})", "prompt", "context_length_exceeded", 400},
      {"/v1/chat/completions", R"({"messages":[{"role":"assistant","content":"x"},{"role":"system","content":"y"}]})",
       "messages", "", 400},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    expect_error(post(c.path, c.body), c.status, c.param, c.code);
    expect_serving();
  }
  EXPECT_TRUE(engine_->submitted().size() == std::size(cases));  // only the good ones reached the engine
}

TEST_F(HttpServerTest, ChatWithoutTemplateIsA400NamingTheCause) {
  auto options = default_options();
  options.chat_template.reset();
  options.no_chat_template_reason = "models/x carries no chat template";
  start({}, options);
  const Json r = post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}]})");
  expect_error(r, 400, "messages", "no_chat_template");
  EXPECT_NE(body_json(r)["error"]["message"].get<std::string>().find("models/x carries no chat template"),
            std::string::npos);
  expect_serving();
}

TEST_F(HttpServerTest, ApiKeys) {
  auto options = default_options();
  options.api_keys = {"key-one", "key-two"};
  start({}, options);
  const std::string body = R"({"prompt":"Once","max_tokens":2})";
  expect_error(post("/v1/completions", body), 401, "", "invalid_api_key");
  expect_error(post("/v1/completions", body, {"--header", "Authorization: Bearer key-on"}), 401, "", "invalid_api_key");
  expect_error(probe1("GET", "/v1/models", {"--header", "Authorization: Bearer nope"}), 401);
  EXPECT_EQ(post("/v1/completions", body, {"--header", "Authorization: Bearer key-two"})["status"], 200);
  // curl too; /health and /metrics stay open.
  const CommandResult ok = curl({"-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer key-one",
                                 url("/v1/models")});
  EXPECT_EQ(ok.out, "200") << ok.err;
  const CommandResult bad = curl({"-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer key-three",
                                  url("/v1/models")});
  EXPECT_EQ(bad.out, "401") << bad.err;
  EXPECT_EQ(probe1("GET", "/health")["status"], 200);
  EXPECT_EQ(probe1("GET", "/metrics")["status"], 200);
}

TEST_F(HttpServerTest, BodyOverTheLimitIs413) {
  auto options = default_options();
  options.max_request_bytes = 4096;
  start({}, options);
  TempDir dir;
  write_file(dir.file("big.json"), R"({"prompt":")" + std::string(8000, 'a') + R"("})");
  const CommandResult r = curl({"-o", dir.file("out.json"), "-w", "%{http_code}", "-H",
                                "Content-Type: application/json", "--data-binary", "@" + dir.file("big.json"),
                                url("/v1/completions")});
  EXPECT_EQ(r.out, "413") << r.err;
  const Json b = Json::parse(read_file(dir.file("out.json")), nullptr, false);
  EXPECT_EQ(b["error"]["code"], "request_too_large");
  expect_error(post("/v1/completions", R"({"prompt":")" + std::string(5000, 'b') + R"("})"), 413);
  expect_serving();
}

int connect_local(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

// Seconds until the server closes a connection that sent half its headers
// (-1 if it did not within 5 s).
double seconds_until_closed(int fd) {
  const auto t0 = Clock::now();
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  const ssize_t n = ::recv(fd, &c, 1, 0);
  return n == 0 ? std::chrono::duration<double>(Clock::now() - t0).count() : -1;
}

TEST_F(HttpServerTest, SlowHeaderClientTimesOutWithoutBlockingOthers) {
  auto options = default_options();
  options.read_timeout = std::chrono::milliseconds(1000);
  start({}, options);
  // Half a request's headers, then silence (slowloris).
  const std::string partial = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Le";
  const int slow = connect_local(server_->port());
  ASSERT_EQ(::send(slow, partial.data(), partial.size(), 0), static_cast<ssize_t>(partial.size()));
  expect_serving();  // others are served meanwhile
  EXPECT_EQ(probe1("GET", "/health")["status"], 200);
  EXPECT_GE(seconds_until_closed(slow), 0) << "expected EOF from the server";
  ::close(slow);
  // Timed alone: closed at the 1 s deadline, not before, not much after.
  const int timed = connect_local(server_->port());
  ASSERT_EQ(::send(timed, partial.data(), partial.size(), 0), static_cast<ssize_t>(partial.size()));
  const double waited = seconds_until_closed(timed);
  ::close(timed);
  EXPECT_GT(waited, 0.8);
  EXPECT_LT(waited, 4.0);
  expect_serving();
}

// A client that keeps writing while its generation runs is not pipelining
// a request: past one request's worth of bytes the server gives up on it
// (cancels, closes) instead of keeping all it sends.
TEST_F(HttpServerTest, AClientFloodingDuringItsGenerationIsCutOff) {
  FakeEngine::Options eo;
  eo.context = 4096;
  eo.piece_interval = std::chrono::milliseconds(20);  // 900 pieces: 18 s
  auto options = default_options();
  options.max_request_bytes = 4096;
  start(eo, options);
  const int fd = connect_local(server_->port());
  const std::string body = R"({"prompt":[1],"max_tokens":900})";
  const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  ASSERT_EQ(::send(fd, (head + body).data(), head.size() + body.size(), 0),
            static_cast<ssize_t>(head.size() + body.size()));
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (engine_->running() == 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(engine_->running(), 1u);
  const std::string junk(64 * 1024, 'j');  // 16 times max_request_bytes
  (void)::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);  // cut short once the server closes: fine
  while (engine_->cancelled().empty() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine_->cancelled(), std::vector<serving::RequestId>{1});
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  const ssize_t n = ::recv(fd, &c, 1, 0);
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << "expected the connection closed, got " << n;
  ::close(fd);
  expect_serving();
}

double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Out of descriptors, accept fails and the connection stays pending, so the
// listener stays readable: the server must wait between tries, not spin an
// I/O thread, and serve the connection once descriptors are free again.
TEST_F(HttpServerTest, OutOfDescriptorsTheServerWaitsInsteadOfSpinning) {
#ifdef TANDEM_SANITIZED
  GTEST_SKIP() << "sanitized build: the sanitizers' runtimes need descriptors of their own (UBSan's vptr "
                  "check opens a pipe, and reports every object as invalid without one), which this test "
                  "takes away; the release build runs it";
#endif
  start();
  const int client = connect_local(server_->port());  // the pending connection's own end: opened before the limit
  const int lowest_free = ::dup(0);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit tight = old;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);  // no new descriptor in this process
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  const std::string request = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const bool sent = ::send(client, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size());
  const double cpu0 = process_cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  const double cpu = process_cpu_seconds() - cpu0;
  ::setrlimit(RLIMIT_NOFILE, &old);
  ASSERT_TRUE(sent);
  EXPECT_LT(cpu, 0.2) << "the process used " << cpu << " s of CPU in 0.8 s while accept failed";
  // Descriptors free again: the pending connection is served.
  timeval tv{5, 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string response;
  char buf[512];
  for (ssize_t n; (n = ::recv(client, buf, sizeof buf, 0)) > 0;) response.append(buf, static_cast<size_t>(n));
  ::close(client);
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  expect_serving();
}

TEST_F(HttpServerTest, MetricsInPrometheusText) {
  start();
  expect_serving();
  expect_serving();
  expect_error(post("/v1/completions", "{"), 400);
  const Json r = probe1("GET", "/metrics");
  ASSERT_EQ(r["status"], 200);
  EXPECT_EQ(r["headers"]["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::istringstream in(r["body"].get<std::string>());
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      types[name] = type;
    } else if (!line.empty() && line[0] != '#') {
      const size_t sp = line.rfind(' ');
      samples[line.substr(0, sp)] = line.substr(sp + 1) == "+Inf" ? INFINITY : std::stod(line.substr(sp + 1));
    }
  }
  EXPECT_EQ(samples["tandem_requests_total{status=\"200\"}"], 2);
  EXPECT_EQ(samples["tandem_requests_total{status=\"400\"}"], 1);
  EXPECT_EQ(samples["tandem_generation_tokens_total"], 4);
  EXPECT_EQ(samples["tandem_prompt_tokens_total"], 2 * tokenizer_->encode("Once", true, false).size());
  EXPECT_EQ(samples["tandem_time_to_first_token_seconds_count"], 2);
  EXPECT_EQ(samples["tandem_time_to_first_token_seconds_bucket{le=\"+Inf\"}"], 2);
  EXPECT_EQ(samples["tandem_time_per_output_token_seconds_count"], 2);
  EXPECT_EQ(samples["tandem_queue_depth"], 3);  // the fake's values
  EXPECT_EQ(samples["tandem_kv_cache_blocks_used"], 42);
  EXPECT_EQ(samples["tandem_kv_cache_blocks_free"], 58);
  EXPECT_TRUE(samples.count("tandem_running_sequences"));
  EXPECT_EQ(types["tandem_time_per_output_token_seconds"], "histogram");
  EXPECT_EQ(types["tandem_requests_total"], "counter");
  EXPECT_EQ(types["tandem_kv_cache_blocks_free"], "gauge");
}

TEST_F(HttpServerTest, QueueLimitIs429) {
  FakeEngine::Options eo;
  eo.context = 4096;
  eo.piece_interval = std::chrono::milliseconds(20);
  auto options = default_options();
  options.max_queued = 1;
  start(eo, options);
  // One long generation holds the only slot while a second is refused.
  Child first = Child::spawn({python3(), source_dir() + "/tests/python/http_probe.py", port(), "POST",
                              "/v1/completions", "--body", R"({"prompt":[1],"max_tokens":60})"});
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (engine_->running() == 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  expect_error(post("/v1/completions", R"({"prompt":"Once"})"), 429, "", "queue_full");
  const ChildExit e = first.wait(std::chrono::seconds(30));
  EXPECT_TRUE(e.exited && e.code == 0) << describe(e);
  EXPECT_NE(first.out().find("\"status\": 200"), std::string::npos) << first.out();
  expect_serving();
}

}  // namespace
}  // namespace tandem::testing
