#include "runtime/train/gradient_sync.h"

#include <algorithm>
#include <chrono>

namespace tandem::train {

GradientSync::GradientSync(TrainComm& comm, std::span<float> grads, size_t bucket_bytes, bool overlap)
    : comm_(comm), grads_(grads), overlap_(overlap) {
  if (!overlap_) return;  // finish() exchanges the whole gradient at once
  const int64_t n = static_cast<int64_t>(grads.size());
  const int64_t per_bucket = std::max<int64_t>(1, static_cast<int64_t>(bucket_bytes / sizeof(float)));
  for (int64_t end = n; end > 0; end -= per_bucket) buckets_.emplace_back(std::max<int64_t>(0, end - per_bucket), end);
  thread_ = std::thread([this] { exchange_loop(); });
}

GradientSync::~GradientSync() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void GradientSync::begin() {
  std::unique_lock lock(mu_);
  // A step that failed mid-backward may have left buckets in flight: they end
  // (each exchange has its deadline) before the counters start over.
  cv_.wait(lock, [this] { return reduced_ == handed_; });
  handed_ = 0;
  reduced_ = 0;
  failure_ = Status::Ok();
}

void GradientSync::ready(int64_t offset) {
  if (!overlap_) return;
  {
    std::lock_guard lock(mu_);
    while (handed_ < buckets_.size() && buckets_[handed_].first >= offset) ++handed_;
  }
  cv_.notify_all();
}

Status GradientSync::reduce(size_t bucket) {
  const auto [begin, end] = buckets_[bucket];
  return comm_.all_reduce_sum(grads_.subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)));
}

void GradientSync::exchange_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || reduced_ < handed_; });
    if (stopping_) return;
    const size_t bucket = reduced_;
    const bool skip = !failure_.ok();  // after a failure the peers are gone: finish fast
    lock.unlock();
    Status s = skip ? Status::Ok() : reduce(bucket);
    lock.lock();
    if (!s.ok() && failure_.ok()) failure_ = std::move(s);
    ++reduced_;
    cv_.notify_all();
  }
}

Status GradientSync::finish(double* waited_seconds) {
  const auto start = std::chrono::steady_clock::now();
  Status result;
  if (!overlap_) {
    result = comm_.all_reduce_sum(grads_);  // one exchange: buckets only serve the overlap
  } else {
    std::unique_lock lock(mu_);
    handed_ = buckets_.size();
    cv_.notify_all();
    // Bounded: every exchange carries the communicator's deadline.
    cv_.wait(lock, [this] { return reduced_ == buckets_.size(); });
    result = failure_;
  }
  if (waited_seconds) {
    *waited_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return result;
}

}  // namespace tandem::train
