// launcher/engine_call.h: a gRPC Generate call's way into the batching
// engine keeps generate()'s meaning (counts, stop reasons, cancellation),
// checked against the fake model's one-by-one reference while the engine
// runs on its own thread, as in the leader.
#include "launcher/engine_call.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/unit/scheduler_test_util.h"

namespace tandem::launcher {
namespace {

class EngineCallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    serving::SchedulerLimits limits;
    limits.max_tokens_per_step = 16;
    limits.max_running = 8;
    limits.max_queued = 16;
    limits.context = 64;
    auto s = serving::Scheduler::create(fake_.fn(), tok_.vocab_size(), tok_, kv_, limits);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    engine_ = std::move(s).value();
    thread_ = std::thread([this] {
      run_status_ = engine_->run([] { return false; }, [] { return Status::Ok(); }, std::chrono::milliseconds(20));
    });
  }
  void TearDown() override {
    engine_->request_shutdown();
    thread_.join();
    EXPECT_TRUE(run_status_.ok()) << run_status_.to_string();
  }

  static GenerateRequest request(int64_t max_new) {
    GenerateRequest r;
    r.prompt_tokens = {1, 40, 41, 42};
    r.max_new_tokens = max_new;
    r.echo_prompt = false;
    return r;
  }
  serving::ServingRequest as_serving(const GenerateRequest& r, int64_t max_tokens) const {
    serving::ServingRequest s;
    s.prompt_tokens = r.prompt_tokens;
    s.max_tokens = max_tokens;
    s.sampler = r.sampler;
    return s;
  }

  const Tokenizer& tok_ = serving::testing::bundled_tokenizer_512();
  PagedKvConfig kv_{4, 64};
  serving::testing::FakeForward fake_{tok_.vocab_size(), kv_, tok_.eos_id()};
  std::unique_ptr<serving::Scheduler> engine_;
  std::thread thread_;
  Status run_status_;
  const std::atomic<bool> never_{false};
};

TEST_F(EngineCallTest, StreamsTheReferenceTokensAndCountsThem) {
  const GenerateRequest r = request(12);
  std::vector<int> tokens;
  std::string text;
  auto stats = call_engine(*engine_, tok_, r, [&](int token, std::string_view piece) {
    if (token >= 0) tokens.push_back(token);
    text += piece;
    return true;
  }, never_);
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  const auto ref = serving::testing::fake_reference(tok_, as_serving(r, 12), -1);
  EXPECT_EQ(tokens, ref.tokens);
  EXPECT_EQ(text, ref.text);
  EXPECT_EQ(stats->generated_tokens, 12);
  EXPECT_EQ(stats->prompt_tokens, 4);
  EXPECT_EQ(stats->stop_reason, "steps");
}

TEST_F(EngineCallTest, StepsCountThePromptAsGenerateDoes) {
  GenerateRequest r = request(-1);
  r.steps = 10;  // 4 prompt tokens: 7 generated, as generate() counts
  auto stats = call_engine(*engine_, tok_, r, [](int, std::string_view) { return true; }, never_);
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  EXPECT_EQ(stats->generated_tokens, 7);
  r.steps = 3;
  EXPECT_EQ(call_engine(*engine_, tok_, r, [](int, std::string_view) { return true; }, never_).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(EngineCallTest, EndOfGenerationIsEos) {
  fake_.eos_at_length = 7;  // the history reaches 7 tokens after 3 generated
  auto stats = call_engine(*engine_, tok_, request(20), [](int, std::string_view) { return true; }, never_);
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  EXPECT_EQ(stats->stop_reason, "eos");
  EXPECT_EQ(stats->generated_tokens, 3);
}

TEST_F(EngineCallTest, ASinkThatStopsCancelsAndFreesTheBlocks) {
  int pieces = 0;
  auto stats = call_engine(*engine_, tok_, request(40), [&](int, std::string_view) { return ++pieces < 3; }, never_);
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  EXPECT_EQ(stats->stop_reason, "cancelled");
  EXPECT_EQ(pieces, 3);  // nothing delivered after the sink said stop
  // How many tokens the engine made before the cancel reached it depends on
  // timing (the fake forward is instant), so only the freed blocks are checked.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (engine_->metrics().kv_blocks_used != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(engine_->metrics().kv_blocks_used, 0);
}

TEST_F(EngineCallTest, ACancelledCallEndsWithinItsPoll) {
  std::atomic<bool> cancelled{true};
  auto stats = call_engine(*engine_, tok_, request(40), [](int, std::string_view) { return true; }, cancelled,
                           std::chrono::milliseconds(5));
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  EXPECT_EQ(stats->stop_reason, "cancelled");
}

TEST_F(EngineCallTest, TheEnginesRefusalIsTheCallsError) {
  GenerateRequest r = request(200);  // 4 + 200 > the context of 64: bounded to the context, not refused
  auto stats = call_engine(*engine_, tok_, r, [](int, std::string_view) { return true; }, never_);
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  EXPECT_EQ(stats->generated_tokens, 60);
  r.prompt_tokens = {1, 600};  // outside the 512-token vocabulary
  EXPECT_EQ(call_engine(*engine_, tok_, r, [](int, std::string_view) { return true; }, never_).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::launcher
