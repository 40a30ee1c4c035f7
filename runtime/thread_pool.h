// A fixed pool of worker threads for data-parallel loops. The calling thread
// takes part in the work, so a pool of N threads uses N-1 workers; a pool of 1
// runs everything inline. One parallel_for at a time (the engine's step loop is
// sequential); calls from several threads at once are a programmer bug.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem {

class ThreadPool {
 public:
  // threads <= 0: one per CPU this process may run on (its affinity mask).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) over disjoint ranges covering [0, n), each at least
  // `grain` long (but the last), and returns when all have run.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop();
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  uint64_t generation_ = 0;  // bumped for every parallel_for; guarded by mutex_
  bool stopping_ = false;
  // Workers yet to finish the current generation. Every worker takes part in
  // every generation, so none can wake late into the next job's fields.
  int pending_workers_ = 0;

  // The current job; written under mutex_ before generation_ is bumped.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_chunk_ = 0;
  std::atomic<int64_t> next_chunk_{0};
};

}  // namespace tandem
