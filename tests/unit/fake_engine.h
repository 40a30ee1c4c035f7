// A fake serving Engine for the HTTP server's tests: one engine thread emits
// deterministic pieces ("p0 ", "p1 ", ... or a script of texts) for every
// running request, optionally slowly, refuses or fails on request, and
// records what it was asked (submissions, cancellations).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/serving/engine.h"

namespace tandem::testing {

class FakeEngine final : public serving::Engine {
 public:
  struct Options {
    int64_t context = 64;
    std::chrono::milliseconds piece_interval{0};  // between steps
    // When set, a request ends with "stop" (as at EOS) after this many pieces.
    int64_t stop_after = -1;
    // When set, the texts pieces carry in turn (else "p<i> ").
    std::vector<std::string> script;
    // A kError event after this many pieces (-1: never).
    int64_t fail_after = -1;
  };

  explicit FakeEngine(Options options) : options_(std::move(options)), thread_([this] { loop(); }) {}
  ~FakeEngine() override {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  // The next submit() fails with this status (once).
  void refuse_next(Status status) {
    std::lock_guard lock(mu_);
    refusal_ = std::move(status);
  }

  Result<serving::RequestId> submit(serving::ServingRequest request, serving::EventSink sink) override {
    std::lock_guard lock(mu_);
    if (!refusal_.ok()) {
      Status s = refusal_;
      refusal_ = Status::Ok();
      return s;
    }
    if (request.prompt_tokens.empty()) return InvalidArgument("empty prompt");
    if (static_cast<int64_t>(request.prompt_tokens.size()) + request.max_tokens > options_.context) {
      return OutOfRange("prompt + max_tokens exceed the context");
    }
    const serving::RequestId id = next_id_++;
    submitted_.push_back(request);
    running_.push_back(Running{id, std::move(request), std::move(sink)});
    cv_.notify_all();
    return id;
  }

  void cancel(serving::RequestId id) override {
    std::lock_guard lock(mu_);
    cancelled_.push_back(id);
    cv_.notify_all();
  }

  serving::EngineMetrics metrics() const override {
    std::lock_guard lock(mu_);
    serving::EngineMetrics m;
    m.running = static_cast<int64_t>(running_.size());
    m.queued = 3;  // distinctive values the /metrics test looks for
    m.kv_blocks_total = 100;
    m.kv_blocks_used = 42;
    return m;
  }
  int64_t context() const override { return options_.context; }

  std::vector<serving::RequestId> cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }
  std::vector<serving::ServingRequest> submitted() const {
    std::lock_guard lock(mu_);
    return submitted_;
  }
  size_t running() const {
    std::lock_guard lock(mu_);
    return running_.size();
  }

 private:
  struct Running {
    serving::RequestId id;
    serving::ServingRequest request;
    serving::EventSink sink;
    int64_t produced = 0;
    bool started = false;
  };

  std::string piece_text(int64_t i) const {
    if (!options_.script.empty()) return options_.script[static_cast<size_t>(i) % options_.script.size()];
    std::string s = "p";
    s += std::to_string(i);
    s += ' ';
    return s;
  }

  // One step for every running request; events are sent outside the lock,
  // as a real engine sends them from its own thread.
  void loop() {
    std::unique_lock lock(mu_);
    while (!quit_) {
      cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return quit_ || !running_.empty(); });
      if (quit_) break;
      std::vector<std::pair<serving::EventSink*, serving::ServingEvent>> out;
      std::vector<serving::RequestId> done;
      for (Running& r : running_) {
        serving::ServingEvent e;
        const bool cancelled = std::find(cancelled_.begin(), cancelled_.end(), r.id) != cancelled_.end() ||
                               std::find(refused_.begin(), refused_.end(), r.id) != refused_.end();
        if (!r.started) {
          r.started = true;
          e.kind = serving::ServingEvent::Kind::kStarted;
          out.emplace_back(&r.sink, e);
          continue;
        }
        if (cancelled || r.produced == options_.fail_after || r.produced >= r.request.max_tokens ||
            r.produced == options_.stop_after) {
          if (r.produced == options_.fail_after && !cancelled) {
            e.kind = serving::ServingEvent::Kind::kError;
            e.status = Internal("the fake engine failed on purpose");
          } else {
            e.kind = serving::ServingEvent::Kind::kFinished;
            e.finish_reason = cancelled ? serving::FinishReason::kCancelled
                              : r.produced == options_.stop_after ? serving::FinishReason::kStop
                                                                  : serving::FinishReason::kLength;
            e.prompt_tokens = static_cast<int64_t>(r.request.prompt_tokens.size());
            e.completion_tokens = r.produced;
          }
          out.emplace_back(&r.sink, e);
          done.push_back(r.id);
          continue;
        }
        e.kind = serving::ServingEvent::Kind::kPiece;
        e.token = static_cast<int>(r.produced % 500) + 3;
        e.text = piece_text(r.produced);
        ++r.produced;
        out.emplace_back(&r.sink, e);
      }
      lock.unlock();
      std::vector<serving::EventSink*> refused;
      for (auto& [sink, event] : out) {
        if (!(*sink)(event)) refused.push_back(sink);
      }
      if (options_.piece_interval.count() > 0) std::this_thread::sleep_for(options_.piece_interval);
      lock.lock();
      // A sink returning false cancels its request, as the contract says.
      for (Running& r : running_) {
        if (std::find(refused.begin(), refused.end(), &r.sink) != refused.end()) refused_.push_back(r.id);
      }
      std::erase_if(running_, [&](const Running& r) {
        return std::find(done.begin(), done.end(), r.id) != done.end();
      });
    }
  }

  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool quit_ = false;
  Status refusal_;
  serving::RequestId next_id_ = 1;
  std::deque<Running> running_;
  std::vector<serving::ServingRequest> submitted_;
  std::vector<serving::RequestId> cancelled_;  // through cancel()
  std::vector<serving::RequestId> refused_;    // a sink returned false
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace tandem::testing
