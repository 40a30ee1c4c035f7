// `tandem ctl` as a user runs it, against a ControlServer with a fake job in
// this process: exit codes (0 ok, 1 the call failed, 2 usage), what it prints,
// and what reached the job.
#include <gtest/gtest.h>

#include <future>

#include "tests/unit/control_test_util.h"
#include "tests/unit/process_util.h"

namespace tandem::control {
namespace {

using std::chrono::seconds;
using testing::CommandResult;

class ControlCtl : public testing::ControlServerTest {
 protected:
  void SetUp() override {
    testing::ControlServerTest::SetUp();
    testing::write_file(token_file, token + "\n");  // as a launcher writes it: one line
  }

  // tandem ctl --endpoint <server> --token-file <file> args...
  CommandResult ctl(const std::vector<std::string>& args, const std::string& file = {}) {
    std::vector<std::string> argv = {testing::tandem_binary(), "ctl", "--endpoint", server->endpoint(),
                                     "--token-file", file.empty() ? token_file : file};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::run_command(argv, std::chrono::seconds(60));
  }

  testing::TempDir dir;
  const std::string token_file = dir.file("token");
};

TEST_F(ControlCtl, Health) {
  auto r = ctl({"health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
  handler.health_status = Unavailable("loading weights");
  r = ctl({"health"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("gRPC UNAVAILABLE: loading weights"), std::string::npos) << r.err;
}

TEST_F(ControlCtl, WrongTokenIsAnErrorNamingTheCode) {
  testing::write_file(dir.file("wrong"), "nope\n");
  auto r = ctl({"status"}, dir.file("wrong"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("UNAUTHENTICATED"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(ControlCtl, TokenFileProblemsAreClearErrors) {
  auto r = ctl({"health"}, dir.file("absent"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot read token file " + dir.file("absent")), std::string::npos) << r.err;
  testing::write_file(dir.file("empty"), "\n");
  r = ctl({"health"}, dir.file("empty"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is empty"), std::string::npos) << r.err;
  testing::write_file(dir.file("crlf"), token + "\r\n");
  EXPECT_EQ(ctl({"health"}, dir.file("crlf")).exit_code, 0);
}

TEST_F(ControlCtl, StatusAsTextAndJson) {
  auto r = ctl({"status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tp=2 pp=1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("node-b"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("models/stories260K"), std::string::npos) << r.out;
  r = ctl({"status", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"tp\": 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"memory_bytes\": 2000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"tokens_served\": 42"), std::string::npos) << r.out;
}

TEST_F(ControlCtl, GenerateStreamsTheTextAndPassesTheFlags) {
  auto r = ctl({"generate", "--prompt", "Once", "--max-tokens", "20", "--temperature", "0.7", "--top-p", "0.9",
                "--top-k", "5", "--seed", "7", "--stop", "zzz", "--stop", " time", "--request-id", "cli-1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Once upon a\n");  // the stop string is not streamed
  EXPECT_NE(r.err.find("request cli-1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("finish stop"), std::string::npos) << r.err;
  const GenerateParams seen = handler.last_params();
  EXPECT_EQ(seen.prompt, "Once");
  EXPECT_EQ(seen.max_tokens, 20);
  EXPECT_FLOAT_EQ(seen.temperature, 0.7f);
  EXPECT_FLOAT_EQ(seen.top_p, 0.9f);
  EXPECT_EQ(seen.top_k, 5);
  EXPECT_EQ(seen.seed, 7);
  EXPECT_EQ(seen.stop, (std::vector<std::string>{"zzz", " time"}));
}

TEST_F(ControlCtl, GenerateFromTokenIds) {
  auto r = ctl({"generate", "--tokens", "1,2,3", "--max-tokens", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Once upon\n");
  EXPECT_NE(r.err.find("finish length"), std::string::npos) << r.err;
  EXPECT_EQ(handler.last_params().prompt_tokens, (std::vector<int>{1, 2, 3}));
}

TEST_F(ControlCtl, ServerSideValidationIsExitOne) {
  auto r = ctl({"generate", "--top-p", "1.5"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("INVALID_ARGUMENT"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("top_p"), std::string::npos) << r.err;
  EXPECT_EQ(handler.generate_calls, 0);
}

TEST_F(ControlCtl, TimeoutIsDeadlineExceeded) {
  handler.hang = true;
  // Long enough for a sanitizer build of ctl to reach the server first.
  auto r = ctl({"--timeout", "3", "generate"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("DEADLINE_EXCEEDED"), std::string::npos) << r.err;
  EXPECT_TRUE(handler.wait_for_cancelled(1, seconds(10)));
}

TEST_F(ControlCtl, CancelARunningGenerateAndAnUnknownOne) {
  handler.hang = true;
  auto running = std::async(std::launch::async, [&] { return ctl({"generate", "--request-id", "long-one"}); });
  ASSERT_TRUE(handler.wait_for_generate_calls(1, seconds(20)));
  auto r = ctl({"cancel", "long-one"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "cancelled long-one\n");
  ASSERT_EQ(running.wait_for(seconds(20)), std::future_status::ready);
  auto g = running.get();
  EXPECT_EQ(g.exit_code, 0) << g.err;
  EXPECT_NE(g.err.find("finish cancelled"), std::string::npos) << g.err;

  r = ctl({"cancel", "long-one"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NOT_FOUND"), std::string::npos) << r.err;
}

TEST_F(ControlCtl, ShutdownReachesTheJob) {
  auto r = ctl({"shutdown"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(handler.shutdown_requests, 1);
}

TEST_F(ControlCtl, UsageErrorsExitTwo) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {},                                            // no action
           {"health", "--bogus"},                         // unknown flag
           {"generate", "--prompt", "a", "--tokens", "1"},  // both prompts
           {"generate", "--tokens", "1,x"},               // not ids
           {"generate", "--max-tokens", "many"},          // not a number
           {"cancel"},                                    // no id
           {"--timeout", "-3", "health"},
           {"--timeout", "-0.5", "health"},               // negative
           {"--timeout", "-1", "health"},
           {"--timeout", "nan", "health"},
           {"--timeout", "0", "health"}}) {
    auto r = ctl(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.exit_code, 2) << joined << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << joined;
  }
  auto r = testing::run_command({testing::tandem_binary(), "ctl", "health"});  // no --endpoint
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--endpoint"), std::string::npos) << r.err;
  EXPECT_EQ(handler.generate_calls, 0);
  EXPECT_EQ(handler.shutdown_requests, 0);
}

}  // namespace
}  // namespace tandem::control
