// Data parallelism's gradient all-reduce, bucket by bucket from the end of
// the flat gradient as the backward finishes it (TrainModel's
// on_grads_final), on a thread of its own so the exchange of the last layers'
// gradients overlaps the backward of the first ones. Internal to Trainer.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/status.h"
#include "runtime/train/train_comm.h"

namespace tandem::train {

class GradientSync {
 public:
  // overlap false: finish() reduces the whole gradient at once on the calling thread.
  GradientSync(TrainComm& comm, std::span<float> grads, size_t bucket_bytes, bool overlap);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // A new backward begins: no bucket is ready.
  void begin();
  // grads[offset, end) are final: the buckets inside go to the exchange.
  void ready(int64_t offset);
  // All buckets reduced (those not yet handed over are now); returns the
  // first failure. `waited_seconds`: how long this call blocked.
  Status finish(double* waited_seconds);

 private:
  void exchange_loop();
  Status reduce(size_t bucket);

  TrainComm& comm_;
  std::span<float> grads_;
  // [begin, end) ranges, the last part of the gradient first (overlap only).
  std::vector<std::pair<int64_t, int64_t>> buckets_;
  const bool overlap_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t handed_ = 0;   // buckets given to the exchange thread
  size_t reduced_ = 0;  // buckets it has finished
  Status failure_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tandem::train
