// Keeps every rank of a job in step. Rank 0 decides what runs (it samples,
// it serves requests); before each forward it announces the forward (tokens
// and position) to the other ranks by broadcast, and every rank then runs it.
// Idle, rank 0 sends a no-op every heartbeat interval, so a follower waiting
// for the next command has a deadline and a rank 0 that died is noticed.
//
// Each rank holds its shard of the model (or, tp = pp = 1, the whole of it);
// the ranks meet inside LlamaModel's forward (all-reduces, pipeline hand-offs)
// and rank 0 gets the result. The command says which result rank 0 wants
// (logits, the greedy token, the k best) because the ranks' last steps differ
// with it.
//
// Command wire format, version 3: a broadcast of 6 x i64
// {version, kind, start_pos, n_tokens, result, k}, then for a forward
// n_tokens x i32. A batched forward (continuous batching, runtime/paged_kv.h)
// reuses the header as {version, kForwardBatch, n_sequences, n_tokens,
// result (logits or argmax), n_table_entries}, then n_sequences x 4 i64
// {tokens, start_pos, want_logits, table_length}, then n_tokens x i32 (the
// sequences' tokens end to end), then n_table_entries x i32 (their block
// tables end to end). Followers check every count against their model's
// limits (max_batch, the pool, the context) before they read further, and
// the model checks the rest (vocabulary, block ids) before it runs.
#pragma once

#include <chrono>
#include <functional>
#include <span>
#include <vector>

#include "collectives/communicator.h"
#include "runtime/llama_model.h"

namespace tandem::launcher {

class Lockstep {
 public:
  Lockstep(collectives::Communicator& comm, LlamaModel& model, std::chrono::milliseconds step_timeout);

  // Rank 0: announce, then run, the forward (runtime/generator.h ForwardFn,
  // ArgmaxForwardFn, TopKForwardFn).
  Status forward(std::span<const int> tokens, int64_t start_pos, std::span<float> logits);
  Result<int> forward_argmax(std::span<const int> tokens, int64_t start_pos);
  Status forward_top_k(std::span<const int> tokens, int64_t start_pos, int k, std::vector<TokenLogit>& best);
  // Rank 0: announce, then run, a batched forward (runtime/paged_kv.h
  // BatchForwardFn; LlamaModel::forward_batch and forward_batch_argmax).
  Status forward_batch(std::span<const SequenceStep> sequences, std::span<float> logits);
  Status forward_batch_argmax(std::span<const SequenceStep> sequences, std::span<int32_t> tokens);
  // Rank 0: keep the followers' deadline fresh while idle.
  Status noop();
  // Rank 0: the followers return from follow() with OK.
  Status shutdown();

  // Ranks > 0: run what rank 0 announces until it shuts down (OK), it goes
  // silent or away (the error), or `should_stop` says so (Aborted).
  Status follow(const std::function<bool()>& should_stop);

 private:
  enum ResultKind : int64_t { kLogits = 0, kArgmax = 1, kTopK = 2 };
  Status check(std::span<const int> tokens, int64_t start_pos) const;
  Status announce(int64_t kind, int64_t start_pos, std::span<const int> tokens, ResultKind result = kLogits,
                  int64_t k = 0);
  Status announce_batch(std::span<const SequenceStep> sequences, ResultKind result);
  // A follower's side of a batch command whose header it has read.
  Status follow_batch(int64_t n_sequences, int64_t n_tokens, int64_t result, int64_t n_entries, Deadline deadline);

  collectives::Communicator& comm_;
  LlamaModel& model_;
  std::chrono::milliseconds step_timeout_;
};

}  // namespace tandem::launcher
