// What a worker does once it has joined its job and loaded its model.
// Rank 0 (the leader) runs the requests: the config's own for `job:
// generate`, then whatever clients send until Shutdown for `job: serve`;
// it drives the other ranks (followers) through launcher/lockstep.h.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <vector>

#include "collectives/communicator.h"
#include "launcher/config.h"
#include "launcher/lockstep.h"
#include "launcher/worker_link.h"
#include "runtime/generator.h"
#include "runtime/loaded_model.h"
#include "runtime/serving/scheduler.h"

namespace tandem::launcher {

struct WorkerContext {
  const RunConfig& config;
  int rank;
  const std::string& token;
  LauncherLink& link;
  collectives::Communicator& comm;
  LoadedModel& model;
};

// The leader's request queue: clients (gRPC threads) submit and block; the
// worker's main thread runs the requests, every rank in step. `job: serve`
// runs them through the continuous-batching engine (start_engine(): many at
// once, one batched forward per step); `job: generate` runs its one request
// through the single-sequence generator.
class Leader {
 public:
  explicit Leader(WorkerContext& context);

  // Blocks until the request ran (or was refused). `on_piece` is called from
  // the worker's main thread while this call waits; `cancelled` is polled.
  Result<GenerateStats> submit(const GenerateRequest& request, const PieceSink& on_piece,
                               const std::atomic<bool>& cancelled);
  void request_shutdown();
  // `job: serve`: builds the scheduler over the model's paged KV pool (the
  // config's engine section), through which submit() and the HTTP front end
  // then run. Before run().
  Status start_engine();
  // The engine, once started (else nullptr): the HTTP front end's.
  serving::Engine* engine() { return engine_.get(); }
  // Runs requests until Shutdown or the launcher's stop; `first` (if any) runs
  // at once and then ends the job (`job: generate`).
  Status run(const GenerateRequest* first);

  // For Status: bytes each rank holds (gathered at start), counters.
  const std::vector<uint64_t>& memory_per_rank() const { return memory_; }
  int64_t tokens_served() const;
  int64_t requests_served() const { return requests_served_.load(); }
  double uptime_s() const;
  bool serving() const { return serving_.load(); }
  Status gather_memory();

 private:
  struct Pending {
    const GenerateRequest& request;
    const PieceSink& on_piece;
    const std::atomic<bool>& cancelled;
    bool done = false;
    Result<GenerateStats> result = Internal("not run");
  };
  // `comm_line`, when given, receives rank 0's communication summary instead
  // of the log: the caller prints it after the text it streamed.
  Result<GenerateStats> execute(const GenerateRequest& request, const PieceSink& on_piece,
                                const std::atomic<bool>& cancelled, std::string* comm_line = nullptr);

  Status run_engine();

  WorkerContext& ctx_;
  Lockstep step_;  // driven from the worker's main thread only
  std::unique_ptr<serving::Scheduler> engine_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending*> queue_;
  // Written under mu_ (the waits on cv_ read it there); atomic because it is
  // also job: generate's own request's cancel flag, read without the lock.
  std::atomic<bool> shutdown_{false};
  std::atomic<bool> serving_{false};
  std::vector<uint64_t> memory_;
  std::atomic<int64_t> tokens_served_{0};
  std::atomic<int64_t> requests_served_{0};
  Clock::time_point started_ = Clock::now();
};

// The config's `generate` section as a request (a seed of -1 is drawn from
// the clock and logged).
GenerateRequest request_from_config(const GenerateConfig& config);

Status run_leader(WorkerContext& context);
Status run_follower(WorkerContext& context);

}  // namespace tandem::launcher
