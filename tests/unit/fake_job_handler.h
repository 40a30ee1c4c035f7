// A JobHandler with no model behind it, for the control-plane tests and the
// fake server binary: it streams a fixed list of pieces, honours max_tokens,
// stop strings and `cancelled` the way the worker must, and records what it
// was asked, so a test can check the server's side of each contract.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "proto/control_server.h"
#include "runtime/stop_filter.h"

namespace tandem::testing {

class FakeJobHandler : public control::JobHandler {
 public:
  static constexpr int kVocab = 512;

  // What the next calls do; set before they start.
  std::vector<control::GeneratedPiece> pieces = {
      {101, "Once"}, {102, " upon"}, {103, " a"}, {104, " time"}, {105, ","}, {106, " Lily"}, {107, " ran"}};
  std::chrono::milliseconds piece_delay{0};
  // `n` pieces "t0", "t1", ...: with piece_delay, a generation long enough
  // that a test's cancel or deadline lands in it even on a loaded machine.
  void use_many_pieces(int n) {
    pieces.clear();
    for (int i = 0; i < n; ++i) {
      control::GeneratedPiece piece{i, std::to_string(i)};
      piece.text.insert(piece.text.begin(), 't');  // not "t" + ...: GCC 12's -Wrestrict false positive
      pieces.push_back(std::move(piece));
    }
  }
  // Never streams anything; waits for `cancelled` (at most 30 s).
  bool hang = false;
  Status health_status;
  bool throw_in_status = false;

  // What happened.
  std::atomic<int> generate_calls{0};
  std::atomic<int> shutdown_requests{0};
  std::atomic<int> saw_cancelled{0};

  control::GenerateParams last_params() {
    std::lock_guard lock(mu_);
    return last_params_;
  }
  // Waits until `n` generate calls have started (bounded by `timeout`).
  bool wait_for_generate_calls(int n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return started_ >= n; });
  }
  bool wait_for_cancelled(int n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return saw_cancelled >= n; });
  }
  bool wait_for_shutdown_request(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return shutdown_requests > 0; });
  }

  Status health() override { return health_status; }

  Result<control::JobStatus> status() override {
    if (throw_in_status) throw std::runtime_error("status exploded");
    control::JobStatus s;
    s.ranks = {{0, "node-a", 1000}, {1, "node-b", 2000}};
    s.model = "models/stories260K";
    s.model_shape = "dim 64, 5 layers";
    s.tp = 2;
    s.pp = 1;
    s.uptime_s = 12.5;
    s.tokens_served = 42;
    s.requests_served = generate_calls;
    s.state = "serving";
    return s;
  }

  Result<control::GenerateSummary> generate(const control::GenerateParams& params,
                                            const std::function<bool(const control::GeneratedPiece&)>& sink,
                                            const std::atomic<bool>& cancelled) override {
    for (size_t i = 0; i < params.prompt_tokens.size(); ++i)
      if (params.prompt_tokens[i] >= kVocab)
        return InvalidArgument("tokens.ids[" + std::to_string(i) + "] must be below the vocabulary size " +
                               std::to_string(kVocab));
    ++generate_calls;
    {
      std::lock_guard lock(mu_);
      last_params_ = params;
      ++started_;
    }
    cv_.notify_all();
    control::GenerateSummary summary;
    summary.prompt_tokens = params.has_prompt_tokens ? static_cast<int64_t>(params.prompt_tokens.size())
                                                     : static_cast<int64_t>(params.prompt.size());
    summary.finish = control::FinishReason::kEos;
    // Stop strings as the engine applies them (runtime/stop_filter.h): the
    // stop string and what follows are never streamed; text held back as a
    // possible start of one goes out at the end as a piece of token -1.
    StopFilter filter(params.stop);
    if (hang) {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!cancelled && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    for (const auto& piece : pieces) {
      if (cancelled) break;
      if (summary.generated_tokens == params.max_tokens) {
        summary.finish = control::FinishReason::kLength;
        break;
      }
      if (!sleep_unless_cancelled(cancelled)) break;
      if (!sink(control::GeneratedPiece{piece.token, filter.push(piece.text)})) break;  // `cancelled` follows
      ++summary.generated_tokens;
      if (filter.stopped()) {
        summary.finish = control::FinishReason::kStop;
        break;
      }
    }
    if (!cancelled && !filter.stopped() && filter.holding()) (void)sink(control::GeneratedPiece{-1, filter.flush()});
    if (cancelled) {
      summary.finish = control::FinishReason::kCancelled;
      bump(saw_cancelled);
    }
    return summary;
  }

  void request_shutdown() override { bump(shutdown_requests); }

 private:
  // Under the lock, so a waiter cannot check between the change and the notify.
  void bump(std::atomic<int>& counter) {
    {
      std::lock_guard lock(mu_);
      ++counter;
    }
    cv_.notify_all();
  }
  bool sleep_unless_cancelled(const std::atomic<bool>& cancelled) {
    const auto until = std::chrono::steady_clock::now() + piece_delay;
    while (std::chrono::steady_clock::now() < until) {
      if (cancelled) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return !cancelled;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  control::GenerateParams last_params_;
  int started_ = 0;
};

}  // namespace tandem::testing
