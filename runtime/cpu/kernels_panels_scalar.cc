// The portable matmul over f32_panels weights (runtime/panel_layout.h): the
// reference the kernel tests hold the AVX-512 one to, and what the other ISAs
// run on such weights.
#include <algorithm>
#include <array>
#include <cstdint>

#include "runtime/cpu/kernels_internal.h"
#include "runtime/panel_layout.h"

namespace tandem::cpu::scalar {

void matmul_panels(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in, int64_t n_out,
                   int64_t row_begin, int64_t row_end) {
  const int64_t packed_end = std::min(row_end, panel_rows(n_out));
  for (int64_t r0 = row_begin / kPanelRows * kPanelRows; r0 < packed_end; r0 += kPanelRows) {
    const float* block = w + r0 * n_in;
    const int64_t lo = std::max(row_begin, r0) - r0, hi = std::min(packed_end, r0 + kPanelRows) - r0;
    for (int64_t t = 0; t < n_tokens; ++t) {
      // One sum per row over k in order, as each AVX-512 lane keeps it.
      std::array<float, kPanelRows> sums{};
      const float* xt = x + t * n_in;
      for (int64_t k = 0; k < n_in; ++k)
        for (int64_t lane = 0; lane < kPanelRows; ++lane) sums[lane] += xt[k] * block[k * kPanelRows + lane];
      std::copy(sums.begin() + lo, sums.begin() + hi, y + t * n_out + r0 + lo);
    }
  }
  // The rows past the last block are row-major where row-major puts them.
  const int64_t tail_begin = std::max(row_begin, panel_rows(n_out));
  if (tail_begin < row_end) matmul_rows(y, x, w, n_tokens, n_in, n_out, tail_begin, row_end);
}

}  // namespace tandem::cpu::scalar
