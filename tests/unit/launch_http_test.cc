// `job: serve` end to end over HTTP: two local workers (tp=2) serve the
// bundled model through the continuous-batching scheduler, driven by
// Python's http.client and curl. The references are independent of the
// server: the published greedy story, and the same requests run one at a
// time.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <sstream>
#include <thread>

#include "tests/unit/launch_test_util.h"

namespace tandem::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

bool have(const char* tool) { return run_command({"/bin/sh", "-c", std::string("command -v ") + tool}, 10s).exit_code == 0; }

// A metric's value from the Prometheus text (a "name value" line), or -1
// when absent. A line scan, not std::regex: GCC 12's <regex> trips
// -Wmaybe-uninitialized in the sanitizer build.
double metric(const std::string& text, const std::string& name) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 && line[name.size()] == ' ') {
      return std::stod(line.substr(name.size() + 1));
    }
  }
  return -1;
}

class ServeHttp : public ::testing::Test {
 public:
  std::string metrics() { return curl({url_ + "/metrics"}).out; }
  Json concurrent(int concurrency, int max_tokens) {
    const CommandResult r = run_command({"python3", source_dir() + "/tests/python/http_concurrent.py", port_,
                                         "--requests", "32", "--concurrency", std::to_string(concurrency),
                                         "--max-tokens", std::to_string(max_tokens)},
                                        300s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out);
  }

 protected:
  void SetUp() override { start({}); }
  // `layout`: extra --set overrides (the default is tp=2).
  void start(const std::vector<std::string>& layout) {
    if (!have("python3") || !have("curl")) GTEST_SKIP() << "python3 and curl are the reference clients";
    std::vector<std::string> sets = {"job=serve", "http.enabled=true", "engine.max_running=32", "engine.kv_blocks=96"};
    sets.insert(sets.end(), layout.begin(), layout.end());
    launcher_ = std::make_unique<Child>(Child::spawn(run_.argv(sets)));
    ASSERT_TRUE(run_.wait_for_log("rank 0 (localhost) is ready", 60s)) << launcher_->err();
    std::string url = read_file(run_.run_dir() + "/http_endpoint");
    url.erase(url.find_last_not_of("\n") + 1);
    url_ = url;
    port_ = url.substr(url.rfind(':') + 1);
  }
  void TearDown() override {
    if (!launcher_) return;
    launcher_->kill(SIGINT);
    const ChildExit e = launcher_->wait(30s);
    EXPECT_TRUE(e.exited) << describe(e);
    EXPECT_TRUE(run_.worker_pids().empty()) << launcher_->err();
  }
  CommandResult curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "120"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 150s);
  }
  // A run id of the test's own: ctest runs these tests at once, and each
  // looks for its own job's workers by it.
  LaunchRun run_{std::string("serve-http-") + ::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name() +
                 "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name()};
  std::unique_ptr<Child> launcher_;
  std::string url_, port_;
};

TEST_F(ServeHttp, GreedyCompletionTellsThePublishedStory) {
  const CommandResult r = curl({url_ + "/v1/completions", "-H", "Content-Type: application/json", "-d",
                                R"({"prompt": "", "max_tokens": 255, "temperature": 0})"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json doc = Json::parse(r.out);
  const std::string text = doc["choices"][0]["text"];
  const std::string story = published_story();
  EXPECT_EQ(text.substr(0, story.size()), story.substr(0, text.size()));
  EXPECT_GT(text.size(), 200u);
}

void expect_concurrent_equals_one_by_one(ServeHttp& t);

TEST_F(ServeHttp, ThirtyTwoConcurrentGreedyRequestsEqualTheSameRunOneByOne) { expect_concurrent_equals_one_by_one(*this); }

// pp=2: the stages run each step's sequences as micro-batches.
class ServeHttpPipeline : public ServeHttp {
 protected:
  void SetUp() override { start({"parallel.tp=1", "parallel.pp=2"}); }
};
TEST_F(ServeHttpPipeline, ThirtyTwoConcurrentGreedyRequestsEqualTheSameRunOneByOne) {
  expect_concurrent_equals_one_by_one(*this);
}

void expect_concurrent_equals_one_by_one(ServeHttp& t) {
  // 32 sequences of ~50 positions want ~128 blocks of 16; the pool holds
  // 96, so some are preempted and recomputed on the way.
  const Json together = t.concurrent(32, 40);
  const Json alone = t.concurrent(1, 40);
  ASSERT_EQ(together.size(), 32u);
  ASSERT_EQ(alone.size(), 32u);
  int distinct = 0;
  for (size_t i = 0; i < 32; ++i) {
    EXPECT_EQ(together[i]["status"], 200) << together[i].dump();
    EXPECT_EQ(together[i]["text"], alone[i]["text"]) << "request " << i;
    EXPECT_EQ(together[i]["completion_tokens"], alone[i]["completion_tokens"]) << "request " << i;
    if (i > 0 && together[i]["text"] != together[0]["text"]) ++distinct;
  }
  EXPECT_GT(distinct, 10);  // the prompts differ, so must most texts
  const std::string m = t.metrics();
  EXPECT_EQ(metric(m, "tandem_kv_cache_blocks_used"), 0) << m;
  EXPECT_EQ(metric(m, "tandem_running_sequences"), 0) << m;
  // The engine's step series moved: the 64 requests' prompts and tokens went
  // through counted steps, each timed once. Every prompt token is a prefill
  // row at least once (more after a preemption), and every generated token
  // but each request's last is a row too.
  const double steps = metric(m, "tandem_engine_steps_total");
  const double decode = metric(m, "tandem_engine_decode_tokens_total");
  const double prefill = metric(m, "tandem_engine_prefill_tokens_total");
  const double prompt = metric(m, "tandem_prompt_tokens_total");
  EXPECT_GT(steps, 0) << m;
  EXPECT_EQ(metric(m, "tandem_engine_step_seconds_count"), steps) << m;
  EXPECT_GT(metric(m, "tandem_engine_step_seconds_sum"), 0) << m;
  EXPECT_GT(decode, 0) << m;
  EXPECT_GE(prefill, prompt) << m;
  EXPECT_GE(decode + prefill + 64, prompt + metric(m, "tandem_generation_tokens_total")) << m;
  // Every request is greedy: every step took the ranks' argmax, not the logits.
  EXPECT_EQ(metric(m, "tandem_engine_argmax_steps_total"), steps) << m;
}

TEST_F(ServeHttp, AClientGoneMidStreamFreesItsBlocksAndTheServerGoesOn) {
  const CommandResult probe =
      run_command({"python3", source_dir() + "/tests/python/http_probe.py", port_, "POST", "/v1/completions", "--body",
                   R"({"prompt": "Once upon a time", "max_tokens": 400, "temperature": 0, "stream": true})",
                   "--disconnect-after", "3"},
                  60s);
  ASSERT_EQ(probe.exit_code, 0) << probe.err;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::string m = metrics();
  while ((metric(m, "tandem_kv_cache_blocks_used") != 0 || metric(m, "tandem_running_sequences") != 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
    m = metrics();
  }
  EXPECT_EQ(metric(m, "tandem_kv_cache_blocks_used"), 0) << m;
  EXPECT_EQ(metric(m, "tandem_running_sequences"), 0) << m;
  EXPECT_GT(metric(m, "tandem_kv_cache_blocks_free"), 0) << m;
  // Still serving.
  const CommandResult r = curl({url_ + "/v1/completions", "-H", "Content-Type: application/json", "-d",
                                R"({"prompt": "Lily", "max_tokens": 8, "temperature": 0})"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["usage"]["completion_tokens"], 8) << r.out;
}

}  // namespace
}  // namespace tandem::testing
