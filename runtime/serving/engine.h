// The serving engine's contract: what the HTTP front end (OpenAI routes) and
// the gRPC Generate call hand to the scheduler, and what comes back.
//
// A request is submitted as prompt token ids (the front end tokenizes and
// applies the chat template); the engine streams events for it through the
// request's sink, from the engine's own thread, until exactly one
// kFinished or kError event, after which the sink is never called again.
// Requests run concurrently: the scheduler (scheduler.h) batches every
// running sequence into one forward per step (continuous batching), their KV
// cache in fixed-size blocks (paged_kv.h).
//
// Thread-safety: submit(), cancel() and metrics() may be called from any
// thread at any time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/status.h"

namespace tandem::serving {

using RequestId = uint64_t;

struct ServingRequest {
  std::vector<int> prompt_tokens;  // at least one; BOS included when the model wants one
  int64_t max_tokens = 16;         // tokens to generate at most (>= 1)
  SamplerConfig sampler;           // per request: greedy, temperature, top-k, top-p, seed
  // Generation ends when the text contains one of these; the stop string and
  // what follows are not streamed (runtime/generator.h's StopFilter rules).
  std::vector<std::string> stop;
  // Stop at the tokenizer's end-of-generation tokens (EOS, end of turn).
  bool stop_at_eos = true;
};

enum class FinishReason { kLength, kStop, kCancelled };
std::string_view finish_reason_name(FinishReason reason);  // "length", "stop", "cancelled"

struct ServingEvent {
  enum class Kind {
    kStarted,   // admitted into the running batch (time to first token counts from submit)
    kPiece,     // one generated token and the text it completes (text may be empty)
    kFinished,  // the last event: finish_reason and the usage counts are set
    kError,     // the last event: status says why (the request was refused or failed)
  };
  Kind kind = Kind::kPiece;
  int token = -1;     // kPiece: the token id (-1 for held-back text released at the end)
  std::string text;   // kPiece
  FinishReason finish_reason = FinishReason::kLength;  // kFinished
  int64_t prompt_tokens = 0;      // kFinished
  int64_t completion_tokens = 0;  // kFinished
  // kFinished: seconds from submit to the first generated token (0 when none
  // was generated), and the mean seconds per generated token after it (0 for
  // fewer than two): the latency histograms /metrics reports.
  double ttft_s = 0;
  double tpot_s = 0;
  // kFinished with kStop: an end-of-generation token (EOS, end of turn)
  // ended it rather than a stop string.
  bool at_eos = false;
  Status status;                  // kError
};

// Called from the engine's thread; must not block for long (queue the event
// and return). Returning false cancels the request (the client went away).
using EventSink = std::function<bool(const ServingEvent& event)>;

// A histogram's state as Prometheus buckets it: counts[i] values in
// (bounds[i-1], bounds[i]] (a value on a bound counts in that bucket), the
// last count those above every bound. Not thread-safe.
struct HistogramCounts {
  explicit HistogramCounts(std::vector<double> bounds_ = {});
  void observe(double value);  // NaN is ignored

  std::vector<double> bounds;    // increasing
  std::vector<uint64_t> counts;  // bounds.size() + 1, not cumulative
  double sum = 0;
  uint64_t count = 0;
};

// A step's seconds: 1 ms (a small model's decode step) to 2 s (a long
// prompt's chunk on a big model).
std::vector<double> step_seconds_bounds();

// What /metrics and the Status RPC report.
struct EngineMetrics {
  int64_t queued = 0;            // submitted, not yet admitted
  int64_t running = 0;           // sequences in the running batch
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_block_size = 0;     // positions per block
  int64_t preemptions = 0;       // sequences evicted and later recomputed
  int64_t steps = 0;             // batched forwards run
  // Those forwards' rows: a decoding sequence's one token, and prompt
  // chunks (with a preempted sequence's recomputation).
  int64_t decode_tokens = 0;
  int64_t prefill_tokens = 0;
  // Steps whose tokens came from the model's argmax (every wanted token
  // greedy): no logits were gathered for them.
  int64_t argmax_steps = 0;
  // Each step that ran a forward, from its start to its tokens streamed
  // (scheduling, the forward across the ranks, sampling): what a running
  // sequence waits per token.
  HistogramCounts step_seconds{step_seconds_bounds()};
  int64_t prompt_tokens = 0;     // counted when a request finishes
  int64_t generated_tokens = 0;  // counted as they are produced
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Queues the request. InvalidArgument for an empty prompt, a token outside
  // the vocabulary, max_tokens < 1, a bad sampler config; OutOfRange when
  // prompt + max_tokens cannot fit the context, or the prompt the whole KV
  // pool (it could never run); ResourceExhausted when the
  // queue is full; Unavailable when the engine is shutting down. On success
  // the sink receives the events; on failure it is never called.
  virtual Result<RequestId> submit(ServingRequest request, EventSink sink) = 0;
  // Ends the request at the next step (its KV blocks are freed then); its
  // sink then receives kFinished with FinishReason::kCancelled. Unknown or
  // finished ids are ignored.
  virtual void cancel(RequestId id) = 0;
  // A snapshot as of the last step; the token counters already include a
  // request by the time its sink receives kFinished.
  virtual EngineMetrics metrics() const = 0;
  // Positions a sequence may occupy (prompt + generated).
  virtual int64_t context() const = 0;
};

}  // namespace tandem::serving
