// The scheduler's edges: submit's refusals, a pool too small for one
// sequence, shutdown, a failing forward (or a bad greedy token), the latency
// figures, and run() on its own thread with clients on others.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

#include "runtime/deadline.h"
#include "runtime/serving/scheduler.h"
#include "tests/unit/scheduler_test_util.h"

namespace tandem::serving {
namespace {

using testing::FakeForward;
using testing::Recorder;

class SchedulerLimitsTest : public ::testing::Test {
 protected:
  const Tokenizer& tok_ = testing::bundled_tokenizer_512();
  PagedKvConfig kv_{4, 8};
  FakeForward fake_{512, kv_, 2};

  std::unique_ptr<Scheduler> make(SchedulerLimits limits = {16, 4, 3, 64}) {
    auto s = Scheduler::create(fake_.fn(), tok_.vocab_size(), tok_, kv_, limits);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  static ServingRequest request(std::vector<int> prompt, int64_t max_tokens) {
    ServingRequest r;
    r.prompt_tokens = std::move(prompt);
    r.max_tokens = max_tokens;
    return r;
  }
};

TEST_F(SchedulerLimitsTest, CreateRefusesBadSettings) {
  EXPECT_FALSE(Scheduler::create({}, 512, tok_, kv_, {16, 4, 3, 64}).ok());
  EXPECT_FALSE(Scheduler::create(fake_.fn(), 500, tok_, kv_, {16, 4, 3, 64}).ok());
  EXPECT_FALSE(Scheduler::create(fake_.fn(), 512, tok_, {0, 8}, {16, 4, 3, 64}).ok());
  EXPECT_FALSE(Scheduler::create(fake_.fn(), 512, tok_, {4, 0}, {16, 4, 3, 64}).ok());
  EXPECT_FALSE(Scheduler::create(fake_.fn(), 512, tok_, kv_, {0, 4, 3, 64}).ok());
  EXPECT_FALSE(Scheduler::create(fake_.fn(), 512, tok_, kv_, {16, 4, 3, 0}).ok());
}

TEST_F(SchedulerLimitsTest, SubmitRefusesWhatCannotRun) {
  auto s = make();
  Recorder never;
  auto code = [&](ServingRequest r) { return s->submit(std::move(r), never.sink()).status().code(); };
  EXPECT_EQ(code(request({}, 4)), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(request({1, 512}, 4)), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(request({1, -1}, 4)), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(request({1, 5}, 0)), StatusCode::kInvalidArgument);
  ServingRequest hot = request({1, 5}, 4);
  hot.sampler.temperature = -1;
  EXPECT_EQ(code(hot), StatusCode::kInvalidArgument);
  EXPECT_EQ(s->submit(request({1, 5}, 4), nullptr).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(request({1, 5}, 63)), StatusCode::kOutOfRange);  // 2 + 63 > 64
  // 33 positions need 9 blocks of 4; the pool has 8.
  const auto big = s->submit(request(std::vector<int>(33, 7), 4), never.sink());
  EXPECT_EQ(big.status().code(), StatusCode::kOutOfRange);  // permanent: not 'retry later'
  EXPECT_NE(big.status().message().find("9 KV blocks"), std::string::npos) << big.status().to_string();
  EXPECT_NE(big.status().message().find("has 8"), std::string::npos) << big.status().to_string();
  EXPECT_TRUE(never.events().empty());

  Recorder q[3];
  for (Recorder& r : q) ASSERT_TRUE(s->submit(request({1, 5}, 62), r.sink()).ok());
  EXPECT_EQ(s->metrics().queued, 3);
  EXPECT_EQ(code(request({1, 5}, 4)), StatusCode::kResourceExhausted);  // max_queued 3
  s->request_shutdown();
  EXPECT_EQ(code(request({1, 5}, 4)), StatusCode::kUnavailable);
  EXPECT_TRUE(never.events().empty());
  s->shutdown(Status::Ok());  // before the recorders go
  for (Recorder& r : q) EXPECT_EQ(r.final_event()->finish_reason, FinishReason::kCancelled);
}

// Requests taken into the step are still queued for max_queued and the
// metrics until the step publishes its own count: a client submitting
// during a long forward must neither slip past the limit nor see the queue
// empty.
TEST_F(SchedulerLimitsTest, RequestsTakenIntoAStepStillCountAsQueued) {
  std::unique_ptr<Scheduler> s;
  int64_t accepted_mid_step = 0, queued_mid_step = -1;
  std::vector<Recorder> late(3);
  auto forward = [&](std::span<const SequenceStep> seqs, std::span<float> logits) {
    if (queued_mid_step < 0) {  // the first step: its requests have left `incoming`
      queued_mid_step = s->metrics().queued;
      for (Recorder& r : late) accepted_mid_step += s->submit(request({1, 5}, 2), r.sink()).ok() ? 1 : 0;
    }
    return fake_.run(seqs, logits);
  };
  auto made = Scheduler::create(forward, tok_.vocab_size(), tok_, kv_, {16, 1, 3, 64});  // one running, three queued
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  s = std::move(made).value();
  Recorder early[3];
  for (Recorder& r : early) ASSERT_TRUE(s->submit(request({1, 5}, 2), r.sink()).ok());
  ASSERT_TRUE(s->step().ok());
  EXPECT_GE(queued_mid_step, 2);  // one of the three admitted at most
  EXPECT_EQ(accepted_mid_step, 0);
  EXPECT_LE(s->metrics().queued, 3);
  ASSERT_TRUE(testing::drain(*s));
  s->shutdown(Status::Ok());
}

TEST_F(SchedulerLimitsTest, ASequenceOutgrowingThePoolEndsWithLength) {
  kv_ = {4, 2};
  fake_ = FakeForward(512, kv_, 2);
  auto s = make();
  Recorder r;
  const ServingRequest req = request({1, 40, 41}, 20);
  ASSERT_TRUE(s->submit(req, r.sink()).ok());
  ASSERT_TRUE(testing::drain(*s));
  // Positions 0..7 fit; the token at position 8 would need a third block.
  const auto ref = testing::fake_reference(tok_, req, -1);
  ASSERT_TRUE(r.final_event().has_value());
  EXPECT_EQ(r.final_event()->finish_reason, FinishReason::kLength);
  EXPECT_EQ(r.tokens(), std::vector<int>(ref.tokens.begin(), ref.tokens.begin() + 6));
  EXPECT_EQ(s->metrics().kv_blocks_used, 0);
  EXPECT_TRUE(fake_.errors.empty());
}

TEST_F(SchedulerLimitsTest, ShutdownCancelsEveryRequest) {
  auto s = make({16, 1, 8, 64});
  Recorder running, waiting;
  ASSERT_TRUE(s->submit(request({1, 5, 6}, 50), running.sink()).ok());
  ASSERT_TRUE(s->submit(request({1, 5, 7}, 50), waiting.sink()).ok());
  ASSERT_TRUE(s->step().ok());
  ASSERT_TRUE(s->step().ok());
  s->shutdown(Status::Ok());
  for (Recorder* r : {&running, &waiting}) {
    EXPECT_EQ(r->check_sequence(), "");
    ASSERT_TRUE(r->final_event().has_value());
    EXPECT_EQ(r->final_event()->kind, ServingEvent::Kind::kFinished);
    EXPECT_EQ(r->final_event()->finish_reason, FinishReason::kCancelled);
  }
  EXPECT_EQ(running.tokens().size(), 2u);
  EXPECT_EQ(running.final_event()->completion_tokens, 2);
  EXPECT_EQ(waiting.final_event()->completion_tokens, 0);
  EXPECT_EQ(s->metrics().kv_blocks_used, 0);
  EXPECT_EQ(s->submit(request({1}, 1), running.sink()).status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(s->step().ok());
  EXPECT_EQ(running.events().size(), 1u + 2u + 1u);
}

TEST_F(SchedulerLimitsTest, AFailedForwardFailsEveryRequest) {
  auto s = make({16, 1, 8, 64});
  fake_.fail_at_call = 2;
  Recorder a, b;
  ASSERT_TRUE(s->submit(request({1, 5, 6}, 50), a.sink()).ok());
  ASSERT_TRUE(s->submit(request({1, 5, 7}, 50), b.sink()).ok());
  ASSERT_TRUE(s->step().ok());
  ASSERT_TRUE(s->step().ok());
  const Status failed = s->step();
  EXPECT_EQ(failed.code(), StatusCode::kInternal);
  for (Recorder* r : {&a, &b}) {
    EXPECT_EQ(r->check_sequence(), "");
    EXPECT_EQ(r->final_event()->status.code(), StatusCode::kInternal);
    EXPECT_NE(r->final_event()->status.message().find("injected"), std::string::npos);
  }
  EXPECT_EQ(s->submit(request({1}, 1), a.sink()).status().code(), StatusCode::kUnavailable);
}

// A greedy token outside the vocabulary from the model's argmax is a broken
// forward, not a token to detokenize.
TEST_F(SchedulerLimitsTest, AGreedyTokenOutsideTheVocabularyFailsTheStep) {
  auto bad = [](std::span<const SequenceStep>, std::span<int32_t> tokens) {
    for (int32_t& t : tokens) t = 512;
    return Status::Ok();
  };
  auto s = Scheduler::create(fake_.fn(), tok_.vocab_size(), tok_, kv_, {16, 4, 3, 64}, bad);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  Recorder a;
  ASSERT_TRUE((*s)->submit(request({1, 5, 6}, 5), a.sink()).ok());
  const Status failed = (*s)->step();
  EXPECT_EQ(failed.code(), StatusCode::kDataLoss) << failed.to_string();
  ASSERT_TRUE(a.final_event().has_value());
  EXPECT_EQ(a.final_event()->status.code(), StatusCode::kDataLoss);
  EXPECT_TRUE(a.tokens().empty());
}

TEST_F(SchedulerLimitsTest, LatencyFiguresAreReported) {
  auto s = make();
  Recorder r, one;
  ASSERT_TRUE(s->submit(request({1, 5, 6}, 5), r.sink()).ok());
  ASSERT_TRUE(s->submit(request({1, 5, 9}, 1), one.sink()).ok());
  ASSERT_TRUE(testing::drain(*s));
  const ServingEvent fin = *r.final_event();
  EXPECT_GT(fin.ttft_s, 0);
  EXPECT_GT(fin.tpot_s, 0);
  EXPECT_LT(fin.ttft_s + fin.tpot_s, 60);
  EXPECT_GT(one.final_event()->ttft_s, 0);
  EXPECT_EQ(one.final_event()->tpot_s, 0);  // one token: no time per output token
}

TEST_F(SchedulerLimitsTest, RunServesClientsOnOtherThreadsAndIdles) {
  kv_ = {4, 64};
  fake_ = FakeForward(512, kv_, 2);
  auto s = make({16, 8, 64, 64});
  std::atomic<int> idles{0};
  Status loop;
  std::thread engine([&] {
    loop = s->run(nullptr, [&] { ++idles; return Status::Ok(); }, std::chrono::milliseconds(2));
  });
  constexpr int kClients = 4, kEach = 5;
  std::vector<std::unique_ptr<Recorder>> rec(kClients * kEach);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kEach; ++i) {
        auto& r = rec[static_cast<size_t>(c * kEach + i)];
        r = std::make_unique<Recorder>();
        const auto id = s->submit(request({1, 10 + c, 20 + i}, 12), r->sink());
        EXPECT_TRUE(id.ok());
        (void)s->metrics();
        if (i == 2 && id.ok()) s->cancel(*id);
        EXPECT_TRUE(r->wait_final(std::chrono::seconds(30)));
      }
    });
  }
  for (std::thread& t : clients) t.join();
  const Deadline deadline = deadline_after(std::chrono::seconds(30));
  while (idles.load() == 0 && !expired(deadline)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_GT(idles.load(), 0);
  s->request_shutdown();
  engine.join();
  EXPECT_TRUE(loop.ok()) << loop.to_string();
  for (int c = 0; c < kClients; ++c) {
    for (int i = 0; i < kEach; ++i) {
      const Recorder& r = *rec[static_cast<size_t>(c * kEach + i)];
      EXPECT_EQ(r.check_sequence(), "");
      if (i == 2) continue;  // cancelled somewhere along the way
      EXPECT_EQ(r.tokens(), testing::fake_reference(tok_, request({1, 10 + c, 20 + i}, 12), -1).tokens);
    }
  }
  EXPECT_EQ(s->metrics().kv_blocks_used, 0);
  EXPECT_TRUE(fake_.errors.empty());
}

}  // namespace
}  // namespace tandem::serving
