// Keeps every rank of a job in step. Rank 0 decides what runs (it samples,
// it serves requests); before each forward it announces the forward (tokens
// and position) to the other ranks by broadcast, and every rank then runs it.
// Idle, rank 0 sends a no-op every heartbeat interval, so a follower waiting
// for the next command has a deadline and a rank 0 that died is noticed.
//
// Today each rank holds the whole model and the forwards are replicated; the
// tensor-parallel forward (sharding) keeps this protocol and splits the work
// inside forward(), where the ranks then meet in all-reduces.
//
// Command wire format, version 1: a broadcast of 4 x i64
// {version, kind, start_pos, n_tokens}, then for a forward n_tokens x i32.
#pragma once

#include <chrono>
#include <functional>
#include <span>

#include "collectives/communicator.h"
#include "runtime/llama_model.h"

namespace tandem::launcher {

class Lockstep {
 public:
  Lockstep(collectives::Communicator& comm, LlamaModel& model, std::chrono::milliseconds step_timeout);

  // Rank 0: announce, then run, the forward (runtime/generator.h ForwardFn).
  Status forward(std::span<const int> tokens, int64_t start_pos, std::span<float> logits);
  // Rank 0: keep the followers' deadline fresh while idle.
  Status noop();
  // Rank 0: the followers return from follow() with OK.
  Status shutdown();

  // Ranks > 0: run what rank 0 announces until it shuts down (OK), it goes
  // silent or away (the error), or `should_stop` says so (Aborted).
  Status follow(const std::function<bool()>& should_stop);

 private:
  Status announce(int64_t kind, int64_t start_pos, std::span<const int> tokens);

  collectives::Communicator& comm_;
  LlamaModel& model_;
  std::chrono::milliseconds step_timeout_;
};

}  // namespace tandem::launcher
