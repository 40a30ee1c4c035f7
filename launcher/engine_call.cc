#include "launcher/engine_call.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>

#include "runtime/deadline.h"

namespace tandem::launcher {
namespace {

using serving::ServingEvent;

// Events from the engine's thread, waiting for the caller's thread. Shared
// with the sink, which the engine may hold until the request's last event.
struct Mailbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<ServingEvent> events;
  bool caller_gone = false;  // the caller returned: drop what still comes
};

std::string stop_reason(serving::FinishReason reason, bool at_eos) {
  switch (reason) {
    case serving::FinishReason::kStop: return at_eos ? "eos" : "stop";
    case serving::FinishReason::kCancelled: return "cancelled";
    case serving::FinishReason::kLength: break;
  }
  return "steps";
}

}  // namespace

Result<GenerateStats> call_engine(serving::Engine& engine, const Tokenizer& tokenizer, const GenerateRequest& request,
                                  const PieceSink& on_piece, const std::atomic<bool>& cancelled,
                                  std::chrono::milliseconds poll) {
  TANDEM_RETURN_IF_ERROR(validate(request.sampler));
  serving::ServingRequest sreq;
  sreq.prompt_tokens = request.prompt_tokens.empty()
                           ? tokenizer.encode(request.prompt, tokenizer.adds_bos(), /*add_eos=*/false)
                           : request.prompt_tokens;
  const int64_t n = static_cast<int64_t>(sreq.prompt_tokens.size());
  const int64_t context = engine.context();
  if (request.max_new_tokens < 0 && (request.steps < 1 || request.steps > context)) {
    return InvalidArgument("steps=" + std::to_string(request.steps) + " is outside [1, " + std::to_string(context) +
                           "], the model's context");
  }
  if (request.max_new_tokens < 0 && n > request.steps) {
    return InvalidArgument("the prompt is " + std::to_string(n) + " tokens, more than steps=" +
                           std::to_string(request.steps));
  }
  GenerateStats stats;
  stats.prompt_tokens = n;
  stats.stop_reason = "steps";
  // generate()'s counts, bounded by what the engine keeps: prompt plus
  // generated tokens within the context.
  const int64_t wanted = request.max_new_tokens < 0 ? request.steps - n + 1 : request.max_new_tokens;
  if (wanted == 0) return stats;
  sreq.max_tokens = std::max<int64_t>(1, std::min(wanted, context - n));
  sreq.sampler = request.sampler;
  sreq.stop = request.stop;

  auto box = std::make_shared<Mailbox>();
  auto sink = [box](const ServingEvent& event) {
    std::lock_guard lock(box->mu);
    if (box->caller_gone) return false;
    box->events.push_back(event);
    box->cv.notify_all();
    return true;
  };
  const auto start = std::chrono::steady_clock::now();
  TANDEM_ASSIGN_OR_RETURN(const serving::RequestId id, engine.submit(std::move(sreq), sink));
  auto leave = [&] {
    std::lock_guard lock(box->mu);
    box->caller_gone = true;
  };
  bool cancel_sent = false;
  auto cancel = [&] {
    if (!cancel_sent) engine.cancel(id);
    cancel_sent = true;
  };
  bool first_token = true;
  while (true) {
    std::unique_lock lock(box->mu);
    // The engine answers every request with a final event (engine.h), and a
    // step has its own deadline, so this loop ends; the poll notices a
    // cancelled caller meanwhile.
    if (!box->cv.wait_for(lock, poll, [&] { return !box->events.empty(); })) {
      lock.unlock();
      if (cancelled.load()) cancel();
      continue;
    }
    ServingEvent event = std::move(box->events.front());
    box->events.pop_front();
    lock.unlock();
    switch (event.kind) {
      case ServingEvent::Kind::kStarted:
        break;
      case ServingEvent::Kind::kPiece:
        if (first_token) {
          stats.prefill_seconds = seconds_since(start);
          first_token = false;
        }
        if (!cancel_sent && (cancelled.load() || !on_piece(event.token, event.text))) cancel();
        break;
      case ServingEvent::Kind::kFinished: {
        leave();
        stats.generated_tokens = event.completion_tokens;
        stats.stop_reason = cancel_sent ? "cancelled" : stop_reason(event.finish_reason, event.at_eos);
        stats.decode_seconds = first_token ? 0 : seconds_since(start) - stats.prefill_seconds;
        return stats;
      }
      case ServingEvent::Kind::kError:
        leave();
        return event.status;
    }
  }
}

}  // namespace tandem::launcher
