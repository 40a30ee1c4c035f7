// AVX-512 (F, VL) f32 matmul for several tokens: the one f32 kernel where
// 512-bit registers pay. A decode batch or a prefill multiplies each weight
// row by many token rows, which is compute-bound, and AVX2's 16 ymm registers
// fit only a 2-row x 4-token tile (6 loads per 8 FMAs, 40-48 GFLOP/s a core
// on the dev VM's EPYC). 32 zmm registers fit 4 rows x 6 tokens: 24
// accumulators, 10 loads per 24 FMAs of twice the width (99-140 GFLOP/s;
// docs/benchmarks.md, "Batched f32 matmul"). The other f32
// kernels, and the one-token matvec (bound by reading the weights), stay
// kAvx2's. Built with -mavx512f -mavx512vl (and the AVX2 flags) and run only
// after best_isa() saw them; the rules of kernels_avx2.cc hold: no inline
// function from a shared header, only intrinsics and builtins, every load
// unaligned, tails through masked loads that never touch masked-off lanes.

#include "runtime/cpu/avx512_intrinsics.h"  // GCC 12 bug 105593's false warnings silenced there

#include <cstdint>

#include "runtime/cpu/kernels_internal.h"

namespace tandem::cpu::avx512 {
namespace {

constexpr int64_t kLanes = 16;
constexpr int kTileRows = 4;    // sum4() reduces and stores a tile's 4 rows together
constexpr int kTileTokens = 6;  // 4 x 6 accumulators + 4 weight vectors + 1 token vector <= 32 registers
// A panel's weights (this many bytes of its rows' current chunk) stay in L2
// while all token groups pass; the next panel is prefetched meanwhile.
constexpr int64_t kPanelBytes = 128 * 1024;
constexpr int64_t kMaxChunk = 1024;  // floats of a row per pass; see matmul_rows

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

// [sum a, sum b, sum c, sum d]: halving to 256 bits, then two rounds of
// hadd, ~13 instructions for four sums where four _mm512_reduce_add_ps take
// ~32. At n_in = 768 a tile's FMA loop is 48 steps, so this is not noise.
inline __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const auto half = [](__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  };
  const __m256 ab = _mm256_hadd_ps(half(a), half(b));  // a01 a23 b01 b23 | a45 a67 b45 b67
  const __m256 cd = _mm256_hadd_ps(half(c), half(d));
  const __m256 abcd = _mm256_hadd_ps(ab, cd);  // a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// kRows weight rows (1..4) against kTokens token rows, over `len` values of
// each (rows and tokens `stride` floats apart): each weight vector loaded
// serves kTokens FMAs, each token vector kRows. Writes y[t * n_out + r] for
// t < kTokens, r < kRows (pointers pre-offset), or adds to it when
// `accumulate` (the second and later chunks of a long row). With `prefetch`,
// also asks for the same span of the four rows there, one line per row per
// step: the next panel's weights arrive from memory while this one computes.
template <int kRows, int kTokens>
void rows_times_tokens(float* y, const float* x, const float* w, int64_t len, int64_t stride, int64_t n_out,
                       bool accumulate, const float* prefetch) {
  __m512 acc[kRows][kTokens];
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 6
    for (int t = 0; t < kTokens; ++t) acc[r][t] = _mm512_setzero_ps();
  }
  const auto step = [&](int64_t i, __mmask16 mask) {
    if (prefetch != nullptr) {
#pragma GCC unroll 4
      for (int r = 0; r < kTileRows; ++r) _mm_prefetch(reinterpret_cast<const char*>(prefetch + r * stride + i), _MM_HINT_T0);
    }
    __m512 w_vec[kRows];
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) w_vec[r] = _mm512_maskz_loadu_ps(mask, w + r * stride + i);
#pragma GCC unroll 6
    for (int t = 0; t < kTokens; ++t) {
      const __m512 x_vec = _mm512_maskz_loadu_ps(mask, x + t * stride + i);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) acc[r][t] = _mm512_fmadd_ps(w_vec[r], x_vec, acc[r][t]);
    }
  };
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes) step(i, static_cast<__mmask16>(0xFFFF));
  if (i < len) step(i, static_cast<__mmask16>((1u << (len - i)) - 1));
  // Rows past kRows reuse row 0's sums and are masked off at the store.
  const __mmask8 row_mask = static_cast<__mmask8>((1u << kRows) - 1);
#pragma GCC unroll 6
  for (int t = 0; t < kTokens; ++t) {
    __m128 sums = sum4(acc[0][t], acc[kRows > 1 ? 1 : 0][t], acc[kRows > 2 ? 2 : 0][t], acc[kRows > 3 ? 3 : 0][t]);
    float* out = y + t * n_out;
    if constexpr (kRows == 4) {
      if (accumulate) sums = _mm_add_ps(sums, _mm_loadu_ps(out));
      _mm_storeu_ps(out, sums);
    } else {
      if (accumulate) sums = _mm_add_ps(sums, _mm_maskz_loadu_ps(row_mask, out));
      _mm_mask_storeu_ps(out, row_mask, sums);
    }
  }
}

using TileFn = void (*)(float*, const float*, const float*, int64_t, int64_t, int64_t, bool, const float*);

template <int kRows, int... kTokens>
constexpr TileFn kTokenTiles[] = {&rows_times_tokens<kRows, kTokens>...};

// kTiles[rows - 1][tokens - 1]: a table, not nested switches, so the call
// costs one indirect jump per tile.
constexpr const TileFn* kTiles[kTileRows] = {kTokenTiles<1, 1, 2, 3, 4, 5, 6>, kTokenTiles<2, 1, 2, 3, 4, 5, 6>,
                                             kTokenTiles<3, 1, 2, 3, 4, 5, 6>, kTokenTiles<4, 1, 2, 3, 4, 5, 6>};

}  // namespace

void matmul_rows(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in, int64_t n_out,
                 int64_t row_begin, int64_t row_end) {
  if (n_tokens == 1) {
    // Bound by reading w, not by arithmetic: AVX2's eight-row matvec already
    // streams memory at full speed.
    avx2::matmul_rows(y, x, w, n_tokens, n_in, n_out, row_begin, row_end);
    return;
  }
  // Rows longer than kMaxChunk go in equal chunks (multiples of 16 but the
  // last), so a token group's slice and a tile's stay in L1; later chunks add
  // to y. Chunks are the outer loop: a token block's slice stays in L2 over
  // all rows, and y is revisited once per chunk (n_tokens/chunk of the
  // weights' traffic).
  const int64_t n_chunks = n_in <= kMaxChunk ? 1 : (n_in + kMaxChunk - 1) / kMaxChunk;
  const int64_t chunk = n_chunks == 1 ? n_in : ((n_in + n_chunks - 1) / n_chunks + kLanes - 1) / kLanes * kLanes;
  const int64_t block = matmul_token_block(chunk);
  const int64_t panel = max_i64(kTileRows, kPanelBytes / (chunk * 4 + 1) / kTileRows * kTileRows);
  for (int64_t t0 = 0; t0 < n_tokens; t0 += block) {
    const int64_t t1 = min_i64(n_tokens, t0 + block);
    // Token groups as even as kTileTokens allows: 16 tokens as 6+5+5, not
    // 6+6+4; 7 as 4+3, not 6 and a 1-token group's 5 loads per 4 FMAs.
    const int64_t n_groups = (t1 - t0 + kTileTokens - 1) / kTileTokens;
    const int64_t small_group = (t1 - t0) / n_groups, n_large = (t1 - t0) % n_groups;
    int64_t k0 = 0;
    do {  // at least once: with n_in == 0, y must still be written (zeros)
      const int64_t len = min_i64(chunk, n_in - k0);
      const bool accumulate = k0 > 0;
      // A panel of rows stays in L2 while the token groups pass it, each
      // group's slice of x in L1 while the panel's tiles pass that.
      for (int64_t p = row_begin; p < row_end; p += panel) {
        const int64_t p_end = min_i64(row_end, p + panel);
        for (int64_t g = 0, t = t0; g < n_groups; ++g) {
          const int64_t group = small_group + (g < n_large ? 1 : 0);
          for (int64_t r = p; r < p_end; r += kTileRows) {
            const int64_t rows = min_i64(kTileRows, p_end - r);
            const float* w_tile = w + r * n_in + k0;
            const float* prefetch = g == 0 && r + panel + kTileRows <= row_end ? w_tile + panel * n_in : nullptr;
            kTiles[rows - 1][group - 1](y + t * n_out + r, x + t * n_in + k0, w_tile, len, n_in, n_out, accumulate,
                                        prefetch);
          }
          t += group;
        }
      }
      k0 += chunk;
    } while (k0 < n_in);
  }
}

double fma_loop(int64_t iterations) {
  // 24 of the 32 zmm registers: more chains than two FMA units x 4 cycles
  // of latency need, none spilled.
  constexpr int kChains = 24;
  const __m512 scale = _mm512_set1_ps(0.999f), step = _mm512_set1_ps(0.001f);
  __m512 acc[kChains];
#pragma GCC unroll 24
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], scale, step);
  }
  __m512 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  volatile float kept = _mm512_reduce_add_ps(sum);  // used, so the loop must run
  (void)kept;
  return 2.0 * 16 * kChains * static_cast<double>(iterations);
}

}  // namespace tandem::cpu::avx512
