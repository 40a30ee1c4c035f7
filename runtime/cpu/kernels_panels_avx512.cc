// AVX-512 matmul over f32_panels weights (runtime/panel_layout.h): a block's
// 32 rows are two zmm of weights per input column, multiplied by each
// token's activation broadcast. A tile is one block x up to 10 tokens: 20
// accumulators, 2 vector loads and 10 broadcasts per 20 FMAs, no horizontal
// sums, and the block read front to back as one stream the hardware
// prefetcher follows (what row-major's four row streams per tile lacked:
// docs/benchmarks.md, "Weights in 32-row panels"). Built with the flags and
// under the rules of kernels_avx512.cc; panel_layout.h's inline helpers are
// not called here for the reason kernels_internal.h gives for
// matmul_token_block.

#include "runtime/cpu/avx512_intrinsics.h"  // GCC 12 bug 105593's false warnings silenced there

#include <cstdint>

#include "runtime/cpu/kernels_internal.h"
#include "runtime/panel_layout.h"

namespace tandem::cpu::avx512 {
namespace {

// 2 x 10 accumulators + 2 weight vectors + 1 broadcast fit the 32 zmm with
// room; the limit is the general registers: each token's row of x is one
// more pointer, and at 11 or 12 tokens GCC -O3 ran out and kept the
// accumulators on the stack (23 tokens: 73 against 101 GFLOP/s on Zen 4,
// docs/benchmarks.md, "Token groups of at most 10, and attention's prefetch
// into L2").
constexpr int kGroupTokens = 10;
static_assert(kPanelRows == 32, "a block is two 16-float vectors wide");
// A panel of blocks (this many bytes of the current chunk) stays in L2 while
// every token group passes it; one 768-column block is 96 KB.
constexpr int64_t kPanelBytes = 96 * 1024;
// Columns per pass: a 10-token group's slice of x (40 KB at 1024) stays in
// L1 (48 KB on Zen 5) or nearly (32 KB on Zen 4, where 512 was no faster).
constexpr int64_t kMaxChunk = 1024;

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

// One block against kTokens tokens over `len` columns: `block` is the
// block's first column of the chunk (32 floats a column), x token 0's (tokens
// `n_in` apart), y the block's first row of token 0 (tokens `n_out` apart).
// Stores the rows set in lo (rows 0-15) and hi (16-31), or adds to them when
// `accumulate` (the second and later chunks); the other rows are neither
// read nor written, so threads can own parts of one block.
template <int kTokens>
void block_times_tokens(float* y, const float* x, const float* block, int64_t len, int64_t n_in, int64_t n_out,
                        __mmask16 lo, __mmask16 hi, bool accumulate) {
  __m512 acc_lo[kTokens], acc_hi[kTokens];
#pragma GCC unroll 10
  for (int t = 0; t < kTokens; ++t) acc_lo[t] = acc_hi[t] = _mm512_setzero_ps();
  for (int64_t k = 0; k < len; ++k) {
    const __m512 w_lo = _mm512_loadu_ps(block + k * kPanelRows);
    const __m512 w_hi = _mm512_loadu_ps(block + k * kPanelRows + 16);
#pragma GCC unroll 10
    for (int t = 0; t < kTokens; ++t) {
      const __m512 x_k = _mm512_set1_ps(x[t * n_in + k]);
      acc_lo[t] = _mm512_fmadd_ps(w_lo, x_k, acc_lo[t]);
      acc_hi[t] = _mm512_fmadd_ps(w_hi, x_k, acc_hi[t]);
    }
  }
#pragma GCC unroll 10
  for (int t = 0; t < kTokens; ++t) {
    float* out = y + t * n_out;
    if (accumulate) {
      acc_lo[t] = _mm512_add_ps(acc_lo[t], _mm512_maskz_loadu_ps(lo, out));
      acc_hi[t] = _mm512_add_ps(acc_hi[t], _mm512_maskz_loadu_ps(hi, out + 16));
    }
    _mm512_mask_storeu_ps(out, lo, acc_lo[t]);
    _mm512_mask_storeu_ps(out + 16, hi, acc_hi[t]);
  }
}

using BlockFn = void (*)(float*, const float*, const float*, int64_t, int64_t, int64_t, __mmask16, __mmask16, bool);

template <int... kTokens>
constexpr BlockFn kBlockFns[] = {&block_times_tokens<kTokens>...};
constexpr const BlockFn* kByTokens = kBlockFns<1, 2, 3, 4, 5, 6, 7, 8, 9, 10>;  // [tokens - 1]

}  // namespace

void matmul_panels(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in, int64_t n_out,
                   int64_t row_begin, int64_t row_end) {
  const int64_t packed = n_out / kPanelRows * kPanelRows;
  const int64_t packed_end = min_i64(row_end, packed);
  if (row_begin < packed_end && n_tokens > 0) {
    const int64_t first_block = row_begin / kPanelRows, end_block = (packed_end + kPanelRows - 1) / kPanelRows;
    const int64_t n_chunks = n_in <= kMaxChunk ? 1 : (n_in + kMaxChunk - 1) / kMaxChunk;
    const int64_t chunk = (n_in + n_chunks - 1) / n_chunks;
    const int64_t panel = max_i64(1, kPanelBytes / max_i64(1, chunk * kPanelRows * 4));
    // Token groups as even as kGroupTokens allows: 23 tokens as 8+8+7.
    const int64_t n_groups = (n_tokens + kGroupTokens - 1) / kGroupTokens;
    const int64_t small_group = n_tokens / n_groups, n_large = n_tokens % n_groups;
    int64_t k0 = 0;
    do {  // at least once: with n_in == 0, y must still be written (zeros)
      const int64_t len = min_i64(chunk, n_in - k0);
      for (int64_t p = first_block; p < end_block; p += panel) {
        const int64_t p_end = min_i64(end_block, p + panel);
        for (int64_t g = 0, t = 0; g < n_groups; ++g) {
          const int64_t group = small_group + (g < n_large ? 1 : 0);
          for (int64_t b = p; b < p_end; ++b) {
            const int64_t r0 = b * kPanelRows;
            const int64_t lo_row = max_i64(row_begin, r0) - r0, hi_row = min_i64(packed_end, r0 + kPanelRows) - r0;
            const uint32_t rows = static_cast<uint32_t>(((uint64_t{1} << hi_row) - 1) & ~((uint64_t{1} << lo_row) - 1));
            kByTokens[group - 1](y + t * n_out + r0, x + t * n_in + k0, w + r0 * n_in + k0 * kPanelRows, len, n_in,
                                 n_out, static_cast<__mmask16>(rows & 0xFFFF), static_cast<__mmask16>(rows >> 16),
                                 k0 > 0);
          }
          t += group;
        }
      }
      k0 += chunk;
    } while (k0 < n_in);
  }
  // The rows past the last block are row-major where row-major puts them.
  const int64_t tail_begin = max_i64(row_begin, packed);
  if (tail_begin < row_end) matmul_rows(y, x, w, n_tokens, n_in, n_out, tail_begin, row_end);
}

}  // namespace tandem::cpu::avx512
