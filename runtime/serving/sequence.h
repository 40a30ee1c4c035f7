// One request's state inside the scheduler (private to runtime/serving).
// Owned by the engine's thread once step() has taken it in; before that it
// sits in the scheduler's incoming queue under its lock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/deadline.h"
#include "runtime/sampler.h"
#include "runtime/serving/engine.h"
#include "runtime/stop_filter.h"

namespace tandem::serving {

struct Sequence {
  Sequence(RequestId id_, ServingRequest request, EventSink sink_, int vocab_size)
      : id(id_),
        sink(std::move(sink_)),
        sampler(vocab_size, request.sampler),
        filter(std::move(request.stop)),
        tokens(std::move(request.prompt_tokens)),
        prompt_len(static_cast<int64_t>(tokens.size())),
        max_tokens(request.max_tokens),
        stop_at_eos(request.stop_at_eos) {}

  const RequestId id;
  const EventSink sink;
  // Lives as long as the request, across preemptions: a recomputed sequence
  // draws its next token from where it left off, not from the seed again.
  Sampler sampler;
  StopFilter filter;
  // The prompt, then every generated token. The last one's keys and values
  // are computed by the next forward (it is that forward's input).
  std::vector<int> tokens;
  const int64_t prompt_len;
  const int64_t max_tokens;
  const bool stop_at_eos;

  int64_t computed = 0;          // leading tokens whose keys and values are in the blocks
  std::vector<int32_t> blocks;   // block table; empty while waiting
  bool started = false;          // kStarted sent (once, not again after a preemption)
  bool client_gone = false;      // the sink returned false or cancel() named it
  bool ended = false;            // the final event was sent: the sink is never called again
  bool leaving = false;          // finish() has begun: no longer counted as queued or running
  bool at_eos = false;           // an end-of-generation token ended it
  std::optional<FinishReason> finish_reason;  // set when generation is over

  Clock::time_point submitted = Clock::now();
  Clock::time_point first_token{}, last_token{};

  int64_t generated() const { return static_cast<int64_t>(tokens.size()) - prompt_len; }
  // Its one uncomputed token is a generated one: the next step is a decode
  // (one row, one new token), not a prompt chunk or a recomputation.
  bool decoding() const { return computed + 1 == static_cast<int64_t>(tokens.size()) && generated() > 0; }
};

}  // namespace tandem::serving
