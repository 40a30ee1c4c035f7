// The continuous-batching scheduler (vLLM's policy): every step runs one
// batched forward (paged_kv.h BatchForwardFn) over the running sequences'
// next tokens: one decode token each, plus chunks of the prompts of newly
// admitted requests (chunked prefill), within a budget of tokens per step.
// While any sequence is decoding, prompt chunks (and recomputations after a
// preemption) take at most max_prefill_tokens of a step and never the decode
// rows' room, so a joining prompt lengthens the running sequences' step by a
// bounded amount (Sarathi-Serve's stall-free batching); with nothing
// decoding a prompt may take the whole step, so time to first token at low
// load does not pay for the cap.
//
// Admission: waiting requests in arrival order (FCFS; a request that cannot
// be admitted blocks the ones behind it, so none starves), while the free KV
// blocks hold the request's whole prompt and still leave one block of
// headroom per running sequence for its growth, and while the running batch
// has room. Preemption: when a running sequence needs a block and none is
// free, the most recently admitted sequence gives up its blocks and goes back
// to the front of the queue with its prompt and the tokens generated so far;
// readmitted, it recomputes them and carries on, its stream seamless. A
// sequence that would need more blocks than the whole pool ends with
// FinishReason::kLength. docs/serving.md says more.
//
// Each request samples with its own Sampler (seeded by its config), so a
// request's text does not depend on what else runs beside it (given a
// forward whose logits do not). A step in which every sequence whose next
// token is wanted samples greedily asks the model for the tokens instead
// (BatchArgmaxFn, when given): the same tokens, without gathering a
// vocabulary of logits per sequence from the vocab-parallel ranks.
//
// Threading: submit(), cancel(), metrics(), context() and
// request_shutdown() may be called from any thread. step(), run() and
// shutdown() must be called from one thread, the engine's thread (in the
// launcher the leader's main thread, which also drives the lockstep); the
// sinks are called from it, never under a lock, so a sink may call submit(),
// cancel() or metrics() (never step()).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/paged_kv.h"
#include "runtime/serving/engine.h"
#include "runtime/tokenizer.h"

namespace tandem::serving {

struct Sequence;  // serving/sequence.h

struct SchedulerLimits {
  int64_t max_tokens_per_step = 64;  // tokens in one batched forward (the model's max_batch)
  int64_t max_running = 32;          // sequences in the running batch
  int64_t max_queued = 256;          // requests waiting for admission; more are refused
  int64_t context = 0;               // positions a sequence may occupy (prompt + generated)
  // Prompt tokens a step may take while other sequences decode (capped at
  // max_tokens_per_step); with nothing decoding, max_tokens_per_step.
  int64_t max_prefill_tokens = 32;
};

class Scheduler : public Engine {
 public:
  // `forward` runs the model (every rank, in the launcher); `argmax`, if
  // set, runs the same forward returning greedy tokens, for steps where
  // every wanted token is greedy; `tokenizer` (which must outlive the
  // scheduler) detokenizes and names the end-of-generation tokens; `kv` is
  // the pool the model was created with. InvalidArgument for limits or a
  // pool below 1, or a tokenizer whose vocabulary is not `vocab_size`.
  static Result<std::unique_ptr<Scheduler>> create(BatchForwardFn forward, int vocab_size,
                                                    const Tokenizer& tokenizer, PagedKvConfig kv,
                                                    SchedulerLimits limits, BatchArgmaxFn argmax = {});
  // Ends whatever is still queued or running as shutdown(Status::Ok()) does.
  // The engine's thread must have left run() by then.
  ~Scheduler() override;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Engine. submit() also refuses (ResourceExhausted, naming the numbers) a
  // prompt that needs more KV blocks than the whole pool, and a request
  // without a sink (InvalidArgument).
  Result<RequestId> submit(ServingRequest request, EventSink sink) override;
  void cancel(RequestId id) override;
  EngineMetrics metrics() const override;
  int64_t context() const override { return limits_.context; }

  // Engine's thread: one scheduling step: takes new requests and
  // cancellations, admits, preempts, runs one batched forward when anything
  // is scheduled (none when idle) and streams the tokens sampled from it. A
  // failed forward fails every request (kError with its status), refuses
  // later ones, and is returned: the model's state is unknown after it.
  Status step();
  // Any thread: whether a request is queued or running (step() has work).
  bool busy() const;

  // Engine's thread: steps until should_stop() says so, request_shutdown()
  // is called, or a step fails (its error is returned). While idle it waits
  // up to `idle_interval` for a request, then calls on_idle (if set; the
  // leader's lockstep no-op), whose error also ends the loop. Before it
  // returns, shutdown() ends what is left.
  Status run(const std::function<bool()>& should_stop, const std::function<Status()>& on_idle,
             std::chrono::milliseconds idle_interval);
  // Any thread: refuse new requests from now on (Unavailable) and make run()
  // return at its next iteration.
  void request_shutdown();
  // Engine's thread: ends every queued and running request and refuses later
  // requests. For `why` OK (a requested stop) each ends as a Cancel would end
  // it: kFinished with FinishReason::kCancelled and its usage; otherwise (a
  // failure) with kError(why).
  void shutdown(Status why);

 private:
  Scheduler(BatchForwardFn forward, BatchArgmaxFn argmax, int vocab_size, const Tokenizer& tokenizer,
            PagedKvConfig kv, SchedulerLimits limits);

  // scheduler.cc
  Status validate(const ServingRequest& request) const;
  void take_incoming();  // new requests and cancellations, under the lock
  void publish_metrics();
  // Sends `event` unless the request already ended; a sink returning false
  // marks the request cancelled (it ends after this step).
  void emit(Sequence& seq, const ServingEvent& event);
  // The final events: kFinished (flushing held-back text first, unless
  // cancelled) or kError. The caller removes the sequence; its blocks are
  // released here.
  void finish(Sequence& seq, FinishReason reason);
  void fail(Sequence& seq, const Status& why);

  // scheduler_step.cc
  struct Scheduled {
    Sequence* seq;
    int64_t tokens;  // from seq->computed on
  };
  // What is left of a step: `tokens` in all, `prefill` of them for prompt
  // chunks and recomputations (never more than `tokens`).
  struct Budget {
    int64_t tokens;
    int64_t prefill;
  };
  void apply_cancellations();
  Budget step_budget() const;
  void schedule_running(std::vector<Scheduled>& batch, Budget& budget);
  void admit_waiting(std::vector<Scheduled>& batch, Budget& budget);
  void preempt_last();
  void accept_token(Sequence& seq, int token);
  void retire_finished();
  // Runs steps_ through the model and leaves the wanted sequences' next
  // tokens in next_tokens_ (argmax_ when every one of them is greedy).
  Status forward_and_sample(std::span<const Scheduled> batch, int64_t rows);

  const BatchForwardFn forward_;
  const BatchArgmaxFn argmax_;
  const int vocab_size_;
  const Tokenizer& tokenizer_;
  const PagedKvConfig kv_;
  const SchedulerLimits limits_;

  // The engine thread's own state.
  BlockAllocator allocator_;
  std::deque<std::unique_ptr<Sequence>> waiting_;  // admission order: front first
  std::vector<std::unique_ptr<Sequence>> running_;  // admission order: back is the newest
  std::vector<RequestId> cancels_taken_;
  std::vector<SequenceStep> steps_;  // scratch for one forward
  std::vector<float> logits_;
  std::vector<int32_t> next_tokens_;  // one per wanted row
  int64_t preemptions_ = 0, steps_run_ = 0, prompt_tokens_ = 0, generated_tokens_ = 0;
  int64_t decode_tokens_ = 0, prefill_tokens_ = 0, argmax_steps_ = 0;
  HistogramCounts step_seconds_{step_seconds_bounds()};

  // Shared with the other threads.
  mutable std::mutex mu_;
  std::condition_variable cv_;  // a request, a cancellation or shutdown arrived
  std::deque<std::unique_ptr<Sequence>> incoming_;
  std::vector<RequestId> cancels_;
  bool shutting_down_ = false;
  RequestId next_id_ = 1;
  EngineMetrics published_;  // as of the last step or finished request; queued excludes incoming_
};

}  // namespace tandem::serving
