// A TrainComm for tests: the ranks of one group are threads of this process
// meeting at a mutex and condition variable. Reductions add the ranks'
// values in rank order, so every rank gets bitwise the same result, and a
// rank that never arrives is a DeadlineExceeded, not a hung test.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/train/train_comm.h"

namespace tandem::train::testing {

class TestCommGroup {
 public:
  explicit TestCommGroup(int size) : slots_(static_cast<size_t>(size)) {
    for (int r = 0; r < size; ++r) ranks_.push_back(std::make_unique<Rank>(this, r));
  }
  int size() const { return static_cast<int>(ranks_.size()); }
  TrainComm& rank(int r) { return *ranks_[static_cast<size_t>(r)]; }
  // Collective calls made by rank 0 so far (each rank makes the same).
  int calls() const { return rank0_calls_; }

 private:
  struct Slot {
    const void* data = nullptr;
    size_t bytes = 0;
  };

  class Rank final : public TrainComm {
   public:
    Rank(TestCommGroup* group, int rank) : group_(group), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return group_->size(); }
    Status all_reduce_sum(std::span<float> x) override {
      return group_->reduce(rank_, x, [](float a, float b) { return a + b; });
    }
    Status all_reduce_max(std::span<float> x) override {
      return group_->reduce(rank_, x, [](float a, float b) { return b > a ? b : a; });
    }
    Status all_gather(const void* local, void* out, size_t bytes) override {
      return group_->gather(rank_, local, out, bytes);
    }

   private:
    TestCommGroup* group_;
    int rank_;
  };

  // Every rank arrives before any leaves.
  Status barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const uint64_t generation = generation_;
    if (++arrived_ == size()) {
      arrived_ = 0;
      ++generation_;
      met_.notify_all();
      return Status::Ok();
    }
    if (!met_.wait_for(lock, std::chrono::seconds(60), [&] { return generation_ != generation; }))
      return DeadlineExceeded("test comm: a rank did not arrive within 60 s");
    return Status::Ok();
  }

  Status post(int rank, const void* data, size_t bytes) {
    if (rank == 0) ++rank0_calls_;
    slots_[static_cast<size_t>(rank)] = {data, bytes};
    TANDEM_RETURN_IF_ERROR(barrier());
    for (const Slot& s : slots_)
      if (s.bytes != bytes) return Internal("test comm: ranks passed different sizes to one collective");
    return Status::Ok();
  }

  template <typename Op>
  Status reduce(int rank, std::span<float> x, Op op) {
    TANDEM_RETURN_IF_ERROR(post(rank, x.data(), x.size_bytes()));
    std::vector<float> result(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      float acc = static_cast<const float*>(slots_[0].data)[i];
      for (size_t r = 1; r < slots_.size(); ++r) acc = op(acc, static_cast<const float*>(slots_[r].data)[i]);
      result[i] = acc;
    }
    // Nobody writes their buffer before everyone has read it.
    TANDEM_RETURN_IF_ERROR(barrier());
    std::copy(result.begin(), result.end(), x.begin());
    return Status::Ok();
  }

  Status gather(int rank, const void* local, void* out, size_t bytes) {
    TANDEM_RETURN_IF_ERROR(post(rank, local, bytes));
    for (size_t r = 0; r < slots_.size(); ++r)
      if (bytes > 0) std::memcpy(static_cast<char*>(out) + r * bytes, slots_[r].data, bytes);
    return barrier();
  }

  std::vector<std::unique_ptr<Rank>> ranks_;
  std::vector<Slot> slots_;
  std::mutex mutex_;
  std::condition_variable met_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  int rank0_calls_ = 0;
};

// Runs fn(rank) on one thread per rank and waits for all.
inline void run_ranks(int size, const std::function<void(int rank)>& fn) {
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) threads.emplace_back(fn, r);
  for (std::thread& t : threads) t.join();
}

}  // namespace tandem::train::testing
