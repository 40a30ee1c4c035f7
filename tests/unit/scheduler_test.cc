// The continuous-batching scheduler against a fake batched forward whose
// logits depend only on each sequence's token history (read back from the
// blocks it was given): batched equals one by one, a preempted sequence
// recomputes into the same text, cancellation frees blocks, stop strings
// across token boundaries, seeded sampling independent of the batch, and
// the prefill budget that bounds what a joining prompt adds to a step.
#include <gtest/gtest.h>

#include <memory>

#include "runtime/serving/scheduler.h"
#include "tests/unit/scheduler_test_util.h"

namespace tandem::serving {
namespace {

using testing::FakeForward;
using testing::Recorder;

class SchedulerTest : public ::testing::Test {
 protected:
  const Tokenizer& tok_ = testing::bundled_tokenizer_512();

  std::unique_ptr<Scheduler> make(FakeForward& fake, PagedKvConfig kv, SchedulerLimits limits, bool argmax = false) {
    auto s = Scheduler::create(fake.fn(), tok_.vocab_size(), tok_, kv, limits,
                               argmax ? fake.argmax_fn() : BatchArgmaxFn{});
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static SchedulerLimits limits(int64_t per_step, int64_t running = 32) {
    SchedulerLimits l;
    l.max_tokens_per_step = per_step;
    l.max_running = running;
    l.max_queued = 256;
    l.context = 256;
    return l;
  }

  // A mix: prompts of 1 to 40 tokens (longer than a step's budget: chunked),
  // greedy and seeded sampling, different lengths.
  static std::vector<ServingRequest> mixed_requests(int n) {
    std::vector<ServingRequest> out;
    for (int i = 0; i < n; ++i) {
      ServingRequest r;
      r.prompt_tokens.push_back(1);  // BOS
      for (int j = 0; j < (i * 7) % 40; ++j) r.prompt_tokens.push_back(3 + (i * 31 + j * 17) % 500);
      r.max_tokens = 5 + (i * 13) % 30;
      if (i % 3 == 1) r.sampler = SamplerConfig{0.9f, 0.95f, 0, static_cast<uint64_t>(100 + i)};
      if (i % 3 == 2) r.sampler = SamplerConfig{1.0f, 1.0f, 40, static_cast<uint64_t>(7 * i)};
      out.push_back(std::move(r));
    }
    return out;
  }

  // Runs every request concurrently and checks each against the reference.
  void expect_matches_reference(FakeForward& fake, Scheduler& s, const std::vector<ServingRequest>& requests) {
    std::vector<std::unique_ptr<Recorder>> rec;
    for (const ServingRequest& r : requests) {
      rec.push_back(std::make_unique<Recorder>());
      ASSERT_TRUE(s.submit(r, rec.back()->sink()).ok());
    }
    ASSERT_TRUE(testing::drain(s));
    for (size_t i = 0; i < requests.size(); ++i) {
      const testing::ReferenceOutput ref = testing::fake_reference(tok_, requests[i], fake.eos_at_length);
      EXPECT_EQ(rec[i]->check_sequence(), "") << "request " << i;
      EXPECT_EQ(rec[i]->tokens(), ref.tokens) << "request " << i;
      EXPECT_EQ(rec[i]->text(), ref.text) << "request " << i;
      const auto fin = rec[i]->final_event();
      ASSERT_TRUE(fin.has_value());
      EXPECT_EQ(fin->kind, ServingEvent::Kind::kFinished);
      EXPECT_EQ(fin->finish_reason, ref.reason) << "request " << i;
      EXPECT_EQ(fin->completion_tokens, static_cast<int64_t>(ref.tokens.size()));
      EXPECT_EQ(fin->prompt_tokens, static_cast<int64_t>(requests[i].prompt_tokens.size()));
    }
    EXPECT_TRUE(fake.errors.empty()) << fake.errors.front();
    const EngineMetrics m = s.metrics();
    EXPECT_EQ(m.kv_blocks_used, 0);  // every block came back
    EXPECT_EQ(m.running, 0);
    EXPECT_EQ(m.queued, 0);
  }
};

TEST_F(SchedulerTest, BatchedEqualsOneByOne) {
  const PagedKvConfig kv{4, 512};
  FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
  auto s = make(fake, kv, limits(16));
  const auto requests = mixed_requests(24);
  expect_matches_reference(fake, *s, requests);
  EXPECT_LE(fake.max_tokens_in_call, 16);
  EXPECT_GT(fake.max_sequences_in_call, 8);  // really batched
  EXPECT_GT(fake.partial_chunks, 0);         // and prompts chunked
  EXPECT_EQ(s->metrics().preemptions, 0);
  EXPECT_EQ(s->metrics().steps, fake.calls);
  int64_t prompt = 0, generated = 0;
  for (const auto& r : requests) prompt += static_cast<int64_t>(r.prompt_tokens.size());
  for (const auto& r : requests) generated += static_cast<int64_t>(testing::fake_reference(tok_, r, -1).tokens.size());
  EXPECT_EQ(s->metrics().prompt_tokens, prompt);
  EXPECT_EQ(s->metrics().generated_tokens, generated);
  // Every row of every forward is counted once: the prompts' as prefill
  // (nothing was preempted, so nothing recomputed), the rest as decode.
  int64_t rows = 0;
  for (const auto& call : fake.chunks)
    for (const int64_t n : call) rows += n;
  const EngineMetrics m = s->metrics();
  EXPECT_EQ(m.prefill_tokens, prompt);
  EXPECT_EQ(m.decode_tokens, rows - prompt);
  EXPECT_GT(m.decode_tokens, 0);
  EXPECT_EQ(m.step_seconds.count, static_cast<uint64_t>(fake.calls));
  uint64_t counted = 0;
  for (const uint64_t c : m.step_seconds.counts) counted += c;
  EXPECT_EQ(counted, m.step_seconds.count);
  EXPECT_EQ(m.step_seconds.bounds, step_seconds_bounds());
  EXPECT_GT(m.step_seconds.sum, 0);
}

// An orchestrator asks for the status as soon as its stream ends: by the
// time a request's kFinished reaches its sink, the published counters
// include that request's tokens and prompt, alone or among others, and the
// request is neither running nor holding blocks.
TEST_F(SchedulerTest, MetricsCountARequestBeforeItsClientHearsItFinished) {
  const PagedKvConfig kv{4, 512};
  FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
  auto s = make(fake, kv, limits(16));
  const auto requests = mixed_requests(6);
  std::vector<EngineMetrics> at_finish(requests.size());
  std::vector<int64_t> completion(requests.size(), -1);
  std::vector<size_t> finish_order;
  auto submit = [&](size_t i) {
    return s->submit(requests[i], [&, i](const ServingEvent& e) {
      if (e.kind == ServingEvent::Kind::kFinished) {
        at_finish[i] = s->metrics();
        completion[i] = e.completion_tokens;
        finish_order.push_back(i);
      }
      return true;
    });
  };
  // Alone: the counters are exactly this request's.
  ASSERT_TRUE(submit(0).ok());
  ASSERT_TRUE(testing::drain(*s));
  ASSERT_GT(completion[0], 0);
  EXPECT_EQ(at_finish[0].generated_tokens, completion[0]);
  EXPECT_EQ(at_finish[0].prompt_tokens, static_cast<int64_t>(requests[0].prompt_tokens.size()));
  EXPECT_EQ(at_finish[0].running, 0);
  EXPECT_EQ(at_finish[0].queued, 0);
  EXPECT_EQ(at_finish[0].kv_blocks_used, 0);
  // Among others: each snapshot covers this request and every one that
  // finished before it (requests ending in one step may see each other).
  for (size_t i = 1; i < requests.size(); ++i) ASSERT_TRUE(submit(i).ok());
  ASSERT_TRUE(testing::drain(*s));
  ASSERT_EQ(finish_order.size(), requests.size());
  int64_t finished_tokens = 0, finished_prompts = 0;
  for (const size_t i : finish_order) {
    ASSERT_GT(completion[i], 0) << "request " << i;
    finished_tokens += completion[i];
    finished_prompts += static_cast<int64_t>(requests[i].prompt_tokens.size());
    EXPECT_GE(at_finish[i].generated_tokens, finished_tokens) << "request " << i;
    EXPECT_GE(at_finish[i].prompt_tokens, finished_prompts) << "request " << i;
  }
  // Five requests ran together: each leaves the count as it finishes,
  // ending at none (requests finishing in one step go together).
  for (size_t n = 0; n < finish_order.size(); ++n) {
    const EngineMetrics& m = at_finish[finish_order[n]];
    EXPECT_LE(m.running + m.queued, static_cast<int64_t>(finish_order.size() - n - 1)) << "request " << finish_order[n];
  }
  EXPECT_EQ(at_finish[finish_order.back()].generated_tokens, finished_tokens);
  EXPECT_EQ(at_finish[finish_order.back()].prompt_tokens, finished_prompts);
  EXPECT_EQ(at_finish[finish_order.back()].running, 0);
  EXPECT_EQ(at_finish[finish_order.back()].kv_blocks_used, 0);
}

// Six sequences decode when a 100-token prompt arrives: every step keeps
// their six decode rows and takes at most the prefill budget of the prompt
// (less where the step's token budget leaves less beside the decodes), while
// a step with nothing decoding takes prompts up to the whole step. The texts
// are the one-by-one texts.
TEST_F(SchedulerTest, PromptsJoinDecodingSequencesWithinThePrefillBudget) {
  auto run = [&](int64_t per_step, int64_t prefill_budget, int64_t expected_chunk) {
    SCOPED_TRACE("per step " + std::to_string(per_step) + ", prefill " + std::to_string(prefill_budget));
    const PagedKvConfig kv{4, 512};
    FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
    SchedulerLimits l = limits(per_step);
    l.max_prefill_tokens = prefill_budget;
    auto s = make(fake, kv, l);
    std::vector<ServingRequest> requests;
    for (int i = 0; i < 6; ++i) {
      ServingRequest r;
      r.prompt_tokens = {1, 10 + i};
      for (int j = 0; j < 8; ++j) r.prompt_tokens.push_back(100 + i * 8 + j);
      r.max_tokens = 40;
      requests.push_back(std::move(r));
    }
    ServingRequest long_prompt;
    long_prompt.prompt_tokens.push_back(1);
    for (int j = 0; j < 99; ++j) long_prompt.prompt_tokens.push_back(3 + (j * 37) % 500);
    long_prompt.max_tokens = 10;
    requests.push_back(long_prompt);

    std::vector<std::unique_ptr<Recorder>> rec;
    for (size_t i = 0; i < requests.size(); ++i) rec.push_back(std::make_unique<Recorder>());
    for (size_t i = 0; i < 6; ++i) ASSERT_TRUE(s->submit(requests[i], rec[i]->sink()).ok());
    ASSERT_TRUE(s->step().ok());
    // Nothing decodes yet: the prompts may take the whole step, not just the prefill budget.
    if (per_step >= 60) {
      EXPECT_EQ(fake.chunks.at(0), std::vector<int64_t>(6, 10));
    }
    auto all_decoding = [&] {
      for (size_t i = 0; i < 6; ++i)
        if (rec[i]->tokens().empty()) return false;
      return true;
    };
    while (!all_decoding()) {
      ASSERT_TRUE(s->step().ok());
    }
    ASSERT_TRUE(s->submit(requests[6], rec[6]->sink()).ok());
    const size_t first = fake.chunks.size();
    ASSERT_TRUE(testing::drain(*s));

    int64_t prefill_steps = 0, prompt_seen = 0;
    for (size_t c = first; c < fake.chunks.size() && prompt_seen < 100; ++c) {
      int64_t decode_rows = 0, prefill = 0;
      for (const int64_t n : fake.chunks[c]) (n == 1 ? decode_rows : prefill) += n;
      if (prefill == 0) continue;
      ++prefill_steps;
      prompt_seen += prefill;
      EXPECT_EQ(decode_rows, 6) << "call " << c;  // no decode waits for the prompt
      EXPECT_LE(prefill, expected_chunk) << "call " << c;
      EXPECT_LE(decode_rows + prefill, per_step) << "call " << c;
    }
    EXPECT_EQ(prompt_seen, 100);
    EXPECT_EQ(prefill_steps, (100 + expected_chunk - 1) / expected_chunk);
    for (size_t i = 0; i < requests.size(); ++i) {
      const testing::ReferenceOutput ref = testing::fake_reference(tok_, requests[i], -1);
      EXPECT_EQ(rec[i]->check_sequence(), "") << "request " << i;
      EXPECT_EQ(rec[i]->tokens(), ref.tokens) << "request " << i;
      EXPECT_EQ(rec[i]->text(), ref.text) << "request " << i;
    }
    EXPECT_TRUE(fake.errors.empty()) << fake.errors.front();
    EXPECT_EQ(s->metrics().kv_blocks_used, 0);
  };
  run(64, 8, 8);
  run(64, 1000, 58);  // capped by what the step leaves beside the decodes
  run(10, 8, 4);
}

// Given the model's argmax, a step whose wanted tokens are all greedy
// (temperature 0, or top_k 1 at any temperature) takes it instead of the
// logits; a step with any sampling sequence takes the logits. The texts are
// the one-by-one texts either way, seeded sampling included (a greedy
// sampler draws nothing, so skipping it changes no later draw).
TEST_F(SchedulerTest, GreedyStepsTakeTheModelsArgmax) {
  const PagedKvConfig kv{4, 512};
  {
    FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
    auto s = make(fake, kv, limits(16), /*argmax=*/true);
    std::vector<ServingRequest> greedy = mixed_requests(12);
    for (size_t i = 0; i < greedy.size(); ++i) {
      greedy[i].sampler = SamplerConfig{};
      if (i % 2 == 1) greedy[i].sampler = SamplerConfig{0.8f, 0.9f, 1, 99};  // top_k 1: greedy too
    }
    expect_matches_reference(fake, *s, greedy);
    EXPECT_GT(fake.calls, 0);
    EXPECT_EQ(fake.argmax_calls, fake.calls);
    EXPECT_EQ(s->metrics().argmax_steps, fake.calls);
  }
  {
    FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
    auto s = make(fake, kv, limits(16), /*argmax=*/true);
    // A third greedy and long, the rest sampling and short: steps with
    // both, then greedy steps alone.
    std::vector<ServingRequest> mixed = mixed_requests(24);
    for (size_t i = 0; i < mixed.size(); ++i) mixed[i].max_tokens = i % 3 == 0 ? 40 : 6;
    expect_matches_reference(fake, *s, mixed);
    EXPECT_GT(fake.argmax_calls, 0);
    EXPECT_LT(fake.argmax_calls, fake.calls);
    EXPECT_EQ(s->metrics().argmax_steps, fake.argmax_calls);
  }
  {
    FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
    auto s = make(fake, kv, limits(16));  // no argmax given: always the logits
    std::vector<ServingRequest> greedy = mixed_requests(6);
    for (ServingRequest& r : greedy) r.sampler = SamplerConfig{};
    expect_matches_reference(fake, *s, greedy);
    EXPECT_EQ(fake.argmax_calls, 0);
    EXPECT_EQ(s->metrics().argmax_steps, 0);
  }
}

TEST_F(SchedulerTest, PreemptionUnderATinyPoolKeepsTheTexts) {
  // 16 blocks of 4 positions for 24 sequences of up to 75 positions.
  const PagedKvConfig kv{4, 24};
  FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
  auto s = make(fake, kv, limits(16));
  expect_matches_reference(fake, *s, mixed_requests(24));
  EXPECT_GT(s->metrics().preemptions, 0);
}

TEST_F(SchedulerTest, EndOfGenerationStopsOnlyWhenAsked) {
  const PagedKvConfig kv{4, 64};
  FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
  fake.eos_at_length = 9;  // EOS is the choice after 9 tokens of history
  auto s = make(fake, kv, limits(16));
  ServingRequest r;
  r.prompt_tokens = {1, 50, 60};
  r.max_tokens = 12;
  std::vector<ServingRequest> both = {r, r};
  both[1].stop_at_eos = false;
  expect_matches_reference(fake, *s, both);
  // The references themselves: 6 tokens then EOS; and EOS streamed as a token.
  EXPECT_EQ(testing::fake_reference(tok_, both[0], 9).tokens.size(), 6u);
  EXPECT_EQ(testing::fake_reference(tok_, both[0], 9).reason, FinishReason::kStop);
  EXPECT_EQ(testing::fake_reference(tok_, both[1], 9).tokens.at(6), tok_.eos_id());
}

TEST_F(SchedulerTest, SeededSamplingIsTheSameWhateverElseRuns) {
  ServingRequest mine;
  mine.prompt_tokens = {1, 200, 201, 202};
  mine.max_tokens = 40;
  mine.sampler = SamplerConfig{1.0f, 0.9f, 0, 12345};
  auto run = [&](int others, int64_t per_step, int64_t blocks) {
    const PagedKvConfig kv{4, blocks};
    FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
    auto s = make(fake, kv, limits(per_step));
    std::vector<ServingRequest> all = mixed_requests(others);
    all.insert(all.begin() + others / 2, mine);
    std::vector<std::unique_ptr<Recorder>> rec;
    for (const ServingRequest& r : all) {
      rec.push_back(std::make_unique<Recorder>());
      EXPECT_TRUE(s->submit(r, rec.back()->sink()).ok());
    }
    EXPECT_TRUE(testing::drain(*s));
    return rec[static_cast<size_t>(others / 2)]->text();
  };
  const std::string alone = run(0, 64, 256);
  EXPECT_FALSE(alone.empty());
  EXPECT_EQ(run(10, 64, 256), alone);
  EXPECT_EQ(run(20, 7, 256), alone);
  EXPECT_EQ(run(20, 16, 20), alone);  // with preemptions
  mine.sampler.seed = 54321;
  EXPECT_NE(run(0, 64, 256), alone);  // the seed matters
}

TEST_F(SchedulerTest, CancelFreesTheBlocksAtTheNextStep) {
  const PagedKvConfig kv{4, 64};
  FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
  auto s = make(fake, kv, limits(64));
  ServingRequest r;
  r.prompt_tokens = {1, 10, 11, 12, 13, 14, 15, 16, 17, 18};  // 10 positions: 3 blocks
  r.max_tokens = 100;
  Recorder a, b;
  const RequestId ida = s->submit(r, a.sink()).value();
  ASSERT_TRUE(s->submit(r, b.sink()).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(s->step().ok());
  const int64_t used = s->metrics().kv_blocks_used;
  EXPECT_EQ(used, 2 * 4);  // 13 positions each
  s->cancel(ida);
  s->cancel(987654);  // unknown: ignored
  EXPECT_EQ(s->metrics().kv_blocks_used, used);  // not before the step
  ASSERT_TRUE(s->step().ok());
  EXPECT_EQ(s->metrics().kv_blocks_used, 4);
  EXPECT_EQ(s->metrics().running, 1);
  EXPECT_EQ(a.check_sequence(), "");
  ASSERT_TRUE(a.final_event().has_value());
  EXPECT_EQ(a.final_event()->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(a.final_event()->completion_tokens, 4);
  s->cancel(ida);  // already finished: ignored, no more events
  ASSERT_TRUE(testing::drain(*s));
  EXPECT_EQ(a.events().size(), 1u + 4u + 1u);
  EXPECT_EQ(b.final_event()->finish_reason, FinishReason::kLength);
  EXPECT_EQ(s->metrics().kv_blocks_used, 0);
}

TEST_F(SchedulerTest, ASinkReturningFalseCancelsAndAQueuedRequestCanBeCancelled) {
  const PagedKvConfig kv{4, 64};
  FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
  auto s = make(fake, kv, limits(64, /*running=*/1));
  ServingRequest r;
  r.prompt_tokens = {1, 20, 21};
  r.max_tokens = 30;
  Recorder gone, queued, after;
  gone.cancel_after_pieces = 3;
  ASSERT_TRUE(s->submit(r, gone.sink()).ok());
  const RequestId idq = s->submit(r, queued.sink()).value();
  ASSERT_TRUE(s->submit(r, after.sink()).ok());
  ASSERT_TRUE(s->step().ok());
  s->cancel(idq);  // never admitted (one running at most)
  ASSERT_TRUE(testing::drain(*s));
  EXPECT_EQ(gone.final_event()->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(gone.tokens().size(), 3u);
  EXPECT_EQ(queued.check_sequence(), "");
  EXPECT_EQ(queued.events().size(), 1u);  // kFinished only: never started
  EXPECT_EQ(queued.final_event()->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(after.tokens(), testing::fake_reference(tok_, r, -1).tokens);
  EXPECT_EQ(s->metrics().kv_blocks_used, 0);
}

TEST_F(SchedulerTest, StopStringsAcrossTokenBoundaries) {
  const PagedKvConfig kv{4, 128};
  FakeForward fake(tok_.vocab_size(), kv, tok_.eos_id());
  ServingRequest r;
  r.prompt_tokens = {1, 300, 301};
  r.max_tokens = 30;
  const testing::ReferenceOutput ref = testing::fake_reference(tok_, r, -1);
  // A stop string from the middle of one token's text into the next one's.
  std::vector<size_t> ends;  // where each token's text ends
  std::string text;
  for (size_t i = 0; i < ref.tokens.size(); ++i) {
    text += tok_.decode_piece(i == 0 ? r.prompt_tokens.back() : ref.tokens[i - 1], ref.tokens[i]);
    ends.push_back(text.size());
  }
  size_t k = 2;
  while (k + 1 < ends.size() && (ends[k] - ends[k - 1] < 2 || ends[k + 1] - ends[k] < 2)) ++k;
  ASSERT_LT(k + 1, ends.size());
  const std::string stop = text.substr(ends[k] - 1, 2);  // last byte of token k, first of k + 1
  const size_t at = text.find(stop);

  auto s = make(fake, kv, limits(64));
  ServingRequest with_stop = r;
  with_stop.stop = {"", "never-in-the-text-\x01", stop};
  ServingRequest held = r;
  held.stop = {ref.text + "!"};  // all of the text could begin it: held back, then released
  Recorder a, b, plain;
  ASSERT_TRUE(s->submit(with_stop, a.sink()).ok());
  ASSERT_TRUE(s->submit(held, b.sink()).ok());
  ASSERT_TRUE(s->submit(r, plain.sink()).ok());
  ASSERT_TRUE(testing::drain(*s));
  EXPECT_EQ(a.text(), text.substr(0, at));
  EXPECT_EQ(a.final_event()->finish_reason, FinishReason::kStop);
  // Counted up to the token that completed the stop string.
  size_t completing = 0;
  while (ends[completing] < at + stop.size()) ++completing;
  EXPECT_EQ(a.final_event()->completion_tokens, static_cast<int64_t>(completing + 1));
  for (const ServingEvent& e : a.events()) EXPECT_EQ(e.text.find(stop), std::string::npos);

  EXPECT_EQ(b.text(), ref.text);
  EXPECT_EQ(b.final_event()->finish_reason, FinishReason::kLength);
  const std::vector<ServingEvent> be = b.events();
  ASSERT_GE(be.size(), 3u);
  EXPECT_EQ(be[be.size() - 2].token, -1);  // the released text, then kFinished
  EXPECT_EQ(be[be.size() - 2].text, ref.text);
  EXPECT_EQ(plain.text(), ref.text);
}

}  // namespace
}  // namespace tandem::serving
