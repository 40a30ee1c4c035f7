// matmul forward and backward. The float versions run on the dispatching SIMD
// kernels (cpu::matmul_rows, cpu::axpy) across the pool; the double versions
// are plain loops, the reference the gradient tests check.
//
// Thread-count independence: every output element is produced by exactly one
// work item, and within an item the sums run in a fixed order, so the same
// inputs give the same bits with any pool (or none).
#include <algorithm>
#include <type_traits>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/status.h"
#include "runtime/train/ops.h"
#include "runtime/train/ops_internal.h"

namespace tandem::train {
namespace {

// matmul_rows takes weight rows in groups of 8 for a single token and a
// different path for the rest, so its sums depend on where a row range
// starts. Work items of 8 weight rows keep every range boundary at a multiple
// of 8 whatever the thread count.
constexpr int64_t kWeightRowsPerItem = 8;

void matmul_forward_float(float* out, const float* x, const float* w, int64_t rows, int64_t n_in,
                          int64_t n_out, ThreadPool* pool) {
  const int64_t items = (n_out + kWeightRowsPerItem - 1) / kWeightRowsPerItem;
  detail::for_ranges(pool, items, detail::grain_for(kWeightRowsPerItem * rows * n_in),
                     [&](int64_t begin, int64_t end) {
                       cpu::matmul_rows(out, x, w, rows, n_in, n_out, begin * kWeightRowsPerItem,
                                        std::min(n_out, end * kWeightRowsPerItem));
                     });
}

// dx = dout @ w is a forward matmul of dout by w's transpose, so it runs on
// the same kernel: about twice as fast on the Shakespeare MLP shape as one
// axpy per (row, o), which re-loads and re-stores the dx row n_out times.
// The transpose costs n_in * n_out moves, 1/rows of the multiply-adds.
//
// The transpose and the product live in scratch that grows to the largest
// matrix once and is reused, so a training step allocates nothing.
float* scratch(std::vector<float>& buffer, int64_t n) {
  if (buffer.size() < static_cast<size_t>(n)) buffer.resize(static_cast<size_t>(n));
  return buffer.data();
}

void matmul_backward_dx_float(float* dx, const float* dout, const float* w, int64_t rows, int64_t n_in,
                              int64_t n_out, bool accumulate_dx, ThreadPool* pool) {
  thread_local std::vector<float> transposed_scratch, product_scratch;
  float* const w_transposed = scratch(transposed_scratch, n_in * n_out);
  detail::for_ranges(pool, n_out, detail::grain_for(n_in), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      for (int64_t i = 0; i < n_in; ++i) w_transposed[i * n_out + o] = w[o * n_in + i];
    }
  });
  if (!accumulate_dx) {
    matmul_forward_float(dx, dout, w_transposed, rows, n_out, n_in, pool);
    return;
  }
  float* const product = scratch(product_scratch, rows * n_in);
  matmul_forward_float(product, dout, w_transposed, rows, n_out, n_in, pool);
  detail::for_ranges(pool, rows, detail::grain_for(n_in), [&](int64_t begin, int64_t end) {
    cpu::add(dx + begin * n_in, product + begin * n_in, (end - begin) * n_in);
  });
}

// dw[o] += sum_m dout[m, o] x[m]: one row of dw per item, m ascending. Four
// rows of dw go through the batch together so each x row, once in L1, serves
// all four (each row's own sum keeps its order).
constexpr int64_t kGradRowsTogether = 4;

void matmul_backward_dw_float(float* dw, const float* dout, const float* x, int64_t rows, int64_t n_in,
                              int64_t n_out, ThreadPool* pool) {
  detail::for_ranges(pool, n_out, detail::grain_for(rows * n_in), [&](int64_t begin, int64_t end) {
    for (int64_t o0 = begin; o0 < end; o0 += kGradRowsTogether) {
      const int64_t o1 = std::min(end, o0 + kGradRowsTogether);
      for (int64_t m = 0; m < rows; ++m) {
        const float* x_row = x + m * n_in;
        const float* dout_row = dout + m * n_out;
        for (int64_t o = o0; o < o1; ++o) cpu::axpy(dw + o * n_in, dout_row[o], x_row, n_in);
      }
    }
  });
}

}  // namespace

template <typename T>
void matmul_forward(T* out, const T* x, const T* w, int64_t rows, int64_t n_in, int64_t n_out,
                    ThreadPool* pool) {
  TANDEM_CHECK(rows >= 0 && n_in >= 0 && n_out >= 0);
  if constexpr (std::is_same_v<T, float>) {
    matmul_forward_float(out, x, w, rows, n_in, n_out, pool);
  } else {
    for (int64_t m = 0; m < rows; ++m) {
      for (int64_t o = 0; o < n_out; ++o) out[m * n_out + o] = detail::dot(x + m * n_in, w + o * n_in, n_in);
    }
  }
}

template <typename T>
void matmul_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, int64_t rows, int64_t n_in,
                     int64_t n_out, bool accumulate_dx, ThreadPool* pool) {
  TANDEM_CHECK(rows >= 0 && n_in >= 0 && n_out >= 0);
  if constexpr (std::is_same_v<T, float>) {
    if (dx != nullptr) matmul_backward_dx_float(dx, dout, w, rows, n_in, n_out, accumulate_dx, pool);
    matmul_backward_dw_float(dw, dout, x, rows, n_in, n_out, pool);
  } else {
    for (int64_t m = 0; m < rows; ++m) {
      const T* dout_row = dout + m * n_out;
      if (dx != nullptr) {
        T* dx_row = dx + m * n_in;
        if (!accumulate_dx) std::fill_n(dx_row, n_in, T(0));
        for (int64_t o = 0; o < n_out; ++o) detail::axpy(dx_row, dout_row[o], w + o * n_in, n_in);
      }
      for (int64_t o = 0; o < n_out; ++o) detail::axpy(dw + o * n_in, dout_row[o], x + m * n_in, n_in);
    }
  }
}

template void matmul_forward<float>(float*, const float*, const float*, int64_t, int64_t, int64_t,
                                    ThreadPool*);
template void matmul_forward<double>(double*, const double*, const double*, int64_t, int64_t, int64_t,
                                     ThreadPool*);
template void matmul_backward<float>(float*, float*, const float*, const float*, const float*, int64_t,
                                     int64_t, int64_t, bool, ThreadPool*);
template void matmul_backward<double>(double*, double*, const double*, const double*, const double*, int64_t,
                                      int64_t, int64_t, bool, ThreadPool*);

}  // namespace tandem::train
