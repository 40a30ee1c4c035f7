// The scheduler's requests, events and lifecycle; the step itself is in
// scheduler_step.cc.
#include "runtime/serving/scheduler.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "runtime/serving/sequence.h"

namespace tandem::serving {
namespace {

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

std::string str(int64_t v) { return std::to_string(v); }

}  // namespace

Result<std::unique_ptr<Scheduler>> Scheduler::create(BatchForwardFn forward, int vocab_size,
                                                     const Tokenizer& tokenizer, PagedKvConfig kv,
                                                     SchedulerLimits limits, BatchArgmaxFn argmax) {
  if (!forward) return InvalidArgument("scheduler: no forward function");
  if (vocab_size < 1 || tokenizer.vocab_size() != vocab_size) {
    return InvalidArgument("scheduler: the tokenizer has " + str(tokenizer.vocab_size()) +
                           " tokens but the model's vocabulary is " + str(vocab_size));
  }
  if (kv.block_size < 1 || kv.num_blocks < 1 || kv.num_blocks > std::numeric_limits<int32_t>::max()) {
    return InvalidArgument("scheduler: KV pool of " + str(kv.num_blocks) + " blocks of " + str(kv.block_size) +
                           " positions");
  }
  if (limits.max_tokens_per_step < 1 || limits.max_running < 1 || limits.max_queued < 1 || limits.context < 1 ||
      limits.max_prefill_tokens < 1) {
    return InvalidArgument("scheduler: limits must be at least 1 (tokens per step " +
                           str(limits.max_tokens_per_step) + ", prefill tokens per step " +
                           str(limits.max_prefill_tokens) + ", running " + str(limits.max_running) + ", queued " +
                           str(limits.max_queued) + ", context " + str(limits.context) + ")");
  }
  return std::unique_ptr<Scheduler>(
      new Scheduler(std::move(forward), std::move(argmax), vocab_size, tokenizer, kv, limits));
}

Scheduler::Scheduler(BatchForwardFn forward, BatchArgmaxFn argmax, int vocab_size, const Tokenizer& tokenizer,
                     PagedKvConfig kv, SchedulerLimits limits)
    : forward_(std::move(forward)),
      argmax_(std::move(argmax)),
      vocab_size_(vocab_size),
      tokenizer_(tokenizer),
      kv_(kv),
      limits_(limits),
      allocator_(kv.num_blocks) {
  publish_metrics();
}

Scheduler::~Scheduler() { shutdown(Unavailable("the engine was destroyed")); }

Status Scheduler::validate(const ServingRequest& request) const {
  const std::vector<int>& prompt = request.prompt_tokens;
  if (prompt.empty()) return InvalidArgument("the prompt has no tokens");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= vocab_size_) {
      return InvalidArgument("prompt token " + str(static_cast<int64_t>(i)) + " is " + str(prompt[i]) +
                             ", outside the vocabulary [0, " + str(vocab_size_) + ")");
    }
  }
  if (request.max_tokens < 1) return InvalidArgument("max_tokens is " + str(request.max_tokens) + ", below 1");
  TANDEM_RETURN_IF_ERROR(tandem::validate(request.sampler));
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (request.max_tokens > limits_.context - n) {
    return OutOfRange("the prompt's " + str(n) + " tokens and max_tokens " + str(request.max_tokens) +
                      " exceed the context of " + str(limits_.context));
  }
  const int64_t blocks = kv_blocks_for(n, kv_.block_size);
  // Never, however long it waits: the pool bounds the context here, which is
  // a refusal of the request (OutOfRange, HTTP 400), not "retry later".
  if (blocks > kv_.num_blocks) {
    return OutOfRange("the prompt's " + str(n) + " tokens need " + str(blocks) + " KV blocks of " +
                      str(kv_.block_size) + " positions; the whole pool has " + str(kv_.num_blocks) +
                      " (engine.kv_blocks)");
  }
  return Status::Ok();
}

Result<RequestId> Scheduler::submit(ServingRequest request, EventSink sink) {
  if (!sink) return InvalidArgument("no event sink");
  TANDEM_RETURN_IF_ERROR(validate(request));
  std::lock_guard lock(mu_);
  if (shutting_down_) return Unavailable("the engine is shutting down");
  const int64_t queued = published_.queued + static_cast<int64_t>(incoming_.size());
  if (queued >= limits_.max_queued) {
    return ResourceExhausted("the queue is full: " + str(queued) + " requests waiting (max_queued " +
                             str(limits_.max_queued) + ")");
  }
  const RequestId id = next_id_++;
  incoming_.push_back(std::make_unique<Sequence>(id, std::move(request), std::move(sink), vocab_size_));
  cv_.notify_all();
  return id;
}

void Scheduler::cancel(RequestId id) {
  std::lock_guard lock(mu_);
  cancels_.push_back(id);
  cv_.notify_all();
}

EngineMetrics Scheduler::metrics() const {
  std::lock_guard lock(mu_);
  EngineMetrics m = published_;
  m.queued += static_cast<int64_t>(incoming_.size());
  return m;
}

bool Scheduler::busy() const {
  std::lock_guard lock(mu_);
  return !incoming_.empty() || published_.queued > 0 || published_.running > 0;
}

void Scheduler::request_shutdown() {
  std::lock_guard lock(mu_);
  shutting_down_ = true;
  cv_.notify_all();
}

void Scheduler::take_incoming() {
  std::lock_guard lock(mu_);
  // Still queued until this step publishes its count: submit() and
  // metrics() read published_, and must not see them vanish meanwhile.
  published_.queued += static_cast<int64_t>(incoming_.size());
  for (auto& seq : incoming_) waiting_.push_back(std::move(seq));
  incoming_.clear();
  cancels_taken_.swap(cancels_);
  cancels_.clear();
}

void Scheduler::publish_metrics() {
  EngineMetrics m;
  // A finishing sequence stays in its list until retire_finished(), but
  // its blocks are already free: count it nowhere, as its client will.
  auto staying = [](const std::unique_ptr<Sequence>& s) { return !s->leaving; };
  m.queued = std::ranges::count_if(waiting_, staying);
  m.running = std::ranges::count_if(running_, staying);
  m.kv_blocks_total = allocator_.total_blocks();
  m.kv_blocks_used = allocator_.used_blocks();
  m.kv_block_size = kv_.block_size;
  m.preemptions = preemptions_;
  m.steps = steps_run_;
  m.decode_tokens = decode_tokens_;
  m.prefill_tokens = prefill_tokens_;
  m.argmax_steps = argmax_steps_;
  m.step_seconds = step_seconds_;
  m.prompt_tokens = prompt_tokens_;
  m.generated_tokens = generated_tokens_;
  std::lock_guard lock(mu_);
  published_ = m;
}

void Scheduler::emit(Sequence& seq, const ServingEvent& event) {
  if (seq.ended) return;
  const bool final_event = event.kind == ServingEvent::Kind::kFinished || event.kind == ServingEvent::Kind::kError;
  if (final_event) seq.ended = true;
  if (!seq.sink(event) && !final_event) seq.client_gone = true;
}

void Scheduler::finish(Sequence& seq, FinishReason reason) {
  allocator_.release(seq.blocks);
  seq.computed = 0;
  seq.leaving = true;
  if (seq.ended) return;
  if (reason != FinishReason::kCancelled && seq.filter.holding()) {
    ServingEvent rest;
    rest.kind = ServingEvent::Kind::kPiece;
    rest.text = seq.filter.flush();
    emit(seq, rest);
  }
  ServingEvent done;
  done.kind = ServingEvent::Kind::kFinished;
  done.finish_reason = reason;
  done.prompt_tokens = seq.prompt_len;
  done.completion_tokens = seq.generated();
  done.at_eos = reason == FinishReason::kStop && seq.at_eos;
  if (seq.generated() > 0) done.ttft_s = seconds_between(seq.submitted, seq.first_token);
  if (seq.generated() > 1) {
    done.tpot_s = seconds_between(seq.first_token, seq.last_token) / static_cast<double>(seq.generated() - 1);
  }
  prompt_tokens_ += seq.prompt_len;
  // A client that reads the metrics once its request has ended must find
  // that request's tokens counted and the request itself no longer running
  // (a status query right after a stream).
  publish_metrics();
  emit(seq, done);
}

void Scheduler::fail(Sequence& seq, const Status& why) {
  allocator_.release(seq.blocks);
  seq.computed = 0;
  ServingEvent error;
  error.kind = ServingEvent::Kind::kError;
  error.status = why;
  emit(seq, error);
}

void Scheduler::shutdown(Status why) {
  const bool requested = why.ok();
  {
    std::lock_guard lock(mu_);
    shutting_down_ = true;
  }
  take_incoming();
  cancels_taken_.clear();
  // A requested stop cancels (clients asked nothing wrong; what they got so
  // far is theirs, counted); a failure fails.
  auto end = [&](Sequence& seq) { requested ? finish(seq, FinishReason::kCancelled) : fail(seq, why); };
  for (auto& seq : running_) end(*seq);
  for (auto& seq : waiting_) end(*seq);
  running_.clear();
  waiting_.clear();
  publish_metrics();
}

Status Scheduler::run(const std::function<bool()>& should_stop, const std::function<Status()>& on_idle,
                      std::chrono::milliseconds idle_interval) {
  Status result;
  while (result.ok() && !(should_stop && should_stop())) {
    bool idle = false;
    {
      std::unique_lock lock(mu_);
      if (shutting_down_) break;
      const auto has_work = [&] {
        return !incoming_.empty() || !cancels_.empty() || shutting_down_ || !waiting_.empty() || !running_.empty();
      };
      // waiting_ and running_ are this thread's own; reading them here is
      // safe, and they change only in step().
      idle = !cv_.wait_for(lock, idle_interval, has_work);
      if (shutting_down_) break;
    }
    if (idle) {
      if (on_idle) result = on_idle();
      continue;
    }
    result = step();
  }
  shutdown(result.ok() ? Status::Ok() : result);
  return result;
}

}  // namespace tandem::serving
