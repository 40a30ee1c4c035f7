// Test support for the serving scheduler: a fake batched forward whose
// logits are a function of each sequence's whole token history, read back
// from the paged blocks it wrote (so a wrong block table, a shared block or a
// bad recompute shows up as different text), an independent reference loop
// over the same logits, and event recorders.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "runtime/paged_kv.h"
#include "runtime/sampler.h"
#include "runtime/serving/engine.h"
#include "runtime/serving/scheduler.h"
#include "runtime/tokenizer.h"

namespace tandem::serving::testing {

// The fake model: logits of token t after history h are a hash of (h, t)
// in [0, 4), plus 6 on one favoured token in [3, vocab) (greedy's choice,
// never BOS or EOS), plus 100 on EOS when the history is `eos_at_length`
// tokens long.
void fake_logits(std::span<const int> history, int vocab, int eos_id, int64_t eos_at_length, float* out);

class FakeForward {
 public:
  FakeForward(int vocab, PagedKvConfig kv, int eos_id) : vocab_(vocab), kv_(kv), eos_id_(eos_id),
      cache_(static_cast<size_t>(kv.block_size * kv.num_blocks), -1) {}
  BatchForwardFn fn() {
    return [this](std::span<const SequenceStep> seqs, std::span<float> logits) { return run(seqs, logits); };
  }
  Status run(std::span<const SequenceStep> seqs, std::span<float> logits);
  // The same forward returning each wanted row's first largest logit's id
  // (counted in calls and in argmax_calls).
  BatchArgmaxFn argmax_fn() {
    return [this](std::span<const SequenceStep> seqs, std::span<int32_t> tokens) { return run_argmax(seqs, tokens); };
  }
  Status run_argmax(std::span<const SequenceStep> seqs, std::span<int32_t> tokens);

  int64_t eos_at_length = -1;
  int64_t fail_at_call = -1;  // this call (0-based) returns Internal
  // What the calls looked like.
  int64_t calls = 0;
  int64_t argmax_calls = 0;  // of those, through argmax_fn()
  int64_t max_tokens_in_call = 0;
  int64_t max_sequences_in_call = 0;
  int64_t partial_chunks = 0;  // sequence steps without logits (chunked prefill)
  std::vector<std::vector<int64_t>> chunks;  // per call, each sequence step's token count
  std::vector<std::string> errors;  // contract violations seen (must stay empty)

 private:
  int vocab_;
  PagedKvConfig kv_;
  int eos_id_;
  std::vector<int> cache_;  // the token at each (block, row); -1 never written
};

struct ReferenceOutput {
  std::vector<int> tokens;  // generated, EOS excluded
  std::string text;
  FinishReason reason = FinishReason::kLength;
};
// One request alone, straight from fake_logits: no scheduler, no blocks.
ReferenceOutput fake_reference(const Tokenizer& tokenizer, const ServingRequest& request, int64_t eos_at_length);

// Records one request's events (thread-safe); returns `keep_going` to the
// engine, after `cancel_after_pieces` pieces false.
class Recorder {
 public:
  EventSink sink();
  std::vector<ServingEvent> events() const;
  std::string text() const;
  std::vector<int> tokens() const;  // kPiece tokens, -1 (flushed text) left out
  std::optional<ServingEvent> final_event() const;
  // Contract: one kStarted at most, first; the final event last, once.
  std::string check_sequence() const;
  bool wait_final(std::chrono::milliseconds timeout) const;

  int64_t cancel_after_pieces = -1;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<ServingEvent> events_;
  int64_t pieces_ = 0;
};

// Steps until nothing is queued or running; false after max_steps.
bool drain(Scheduler& scheduler, int max_steps = 10000);

// The stories260K tokenizer (vocab 512).
const Tokenizer& bundled_tokenizer_512();

}  // namespace tandem::serving::testing
