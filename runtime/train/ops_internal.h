// Pieces the training ops' .cc files share: the vector primitives (the
// dispatching SIMD kernels for float, plain loops for the double reference)
// and the one way they split work across a ThreadPool. Not part of the
// ops.h contract.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>

#include "runtime/cpu/kernels.h"
#include "runtime/thread_pool.h"

namespace tandem::train::detail {

inline float dot(const float* a, const float* b, int64_t n) { return cpu::dot(a, b, n); }
inline double dot(const double* a, const double* b, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y += a * x
inline void axpy(float* y, float a, const float* x, int64_t n) { cpu::axpy(y, a, x, n); }
inline void axpy(double* y, double a, const double* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// In place, n >= 1; the max is subtracted first so no exp overflows.
inline void softmax(float* x, int64_t n) { cpu::softmax(x, n); }
inline void softmax(double* x, int64_t n) {
  const double max_value = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - max_value));
  for (int64_t i = 0; i < n; ++i) x[i] /= sum;
}

// Chunks of fewer multiply-adds than this cost more in hand-off than they
// save; the grain of a loop is this divided by the work of one item.
constexpr int64_t kMinChunkWork = int64_t{1} << 15;

inline int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kMinChunkWork / std::max<int64_t>(1, work_per_item));
}

// fn(begin, end) over [0, n): on the pool when there is one, else inline.
// Every caller makes each output element the work of one item, so how the
// items are split never changes a result.
inline void for_ranges(ThreadPool* pool, int64_t n, int64_t grain,
                       const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (pool == nullptr) {
    fn(0, n);
    return;
  }
  pool->parallel_for(n, grain, fn);
}

}  // namespace tandem::train::detail
