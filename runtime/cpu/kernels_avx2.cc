// AVX2+FMA kernels (and F16C for an f16 KV cache). Built only on x86 with
// -mavx2 -mfma -mf16c and run only after best_isa() saw all three, so:
//  - no inline function from a shared header may be instantiated here (no
//    std::min, std::exp, TANDEM_CHECK...): the linker keeps one copy of an
//    inline function for the whole program, and it might keep this file's
//    AVX2 one and crash the scalar path on an older CPU. Helpers live in the
//    anonymous namespace; compiler builtins and intrinsics are fine.
//  - every load is unaligned: weights come from an mmap at a 4-byte offset.
//  - tails (n % 8) use masked loads/stores, which never touch masked lanes,
//    so any n is safe and the tail joins the same accumulators.
#include <immintrin.h>

#include <cstdint>

#include "runtime/cpu/attention_rows.h"
#include "runtime/cpu/kernels_internal.h"

namespace tandem::cpu::avx2 {
namespace {

constexpr int64_t kLanes = 8;

// Eight -1s then eight 0s: loading at offset 8 - rem gives a mask whose first
// `rem` lanes are set.
alignas(64) constexpr int32_t kTailMaskSource[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                     0,  0,  0,  0,  0,  0,  0,  0};

inline __m256i tail_mask(int64_t rem) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTailMaskSource + kLanes - rem));
}

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

inline float horizontal_sum(__m256 v) {
  const __m128 halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
  return _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehdup_ps(pairs)));
}

inline float horizontal_max(__m256 v) {
  const __m128 halves = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pairs = _mm_max_ps(halves, _mm_movehl_ps(halves, halves));
  return _mm_cvtss_f32(_mm_max_ss(pairs, _mm_movehdup_ps(pairs)));
}

// e^x to ~1 ulp (Cephes expf: x = n*ln2 + r, |r| <= ln2/2, degree-6
// polynomial for e^r). 2^n is applied as two halves so results that are
// subnormal or overflow round like IEEE does instead of wrapping the
// exponent field; +-inf and NaN come out as e^x would.
inline __m256 exp_ps(__m256 x) {
  // Beyond these e^x is +inf or rounds to 0 anyway; clamping keeps n small.
  // max/min return their second operand for NaN, so NaN survives.
  x = _mm256_min_ps(_mm256_set1_ps(88.8f), _mm256_max_ps(_mm256_set1_ps(-104.0f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln2 in two parts so n * ln2_hi is exact and r keeps its low bits.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 e_r = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i n_int = _mm256_cvtps_epi32(n);  // in [-150, 129]
  const __m256i n_half = _mm256_srai_epi32(n_int, 1);
  const __m256i n_rest = _mm256_sub_epi32(n_int, n_half);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 scale_half = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n_half, bias), 23));
  const __m256 scale_rest = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n_rest, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(e_r, scale_half), scale_rest);
}

// kRows weight rows against kTokens token rows in one pass over the rows:
// each weight vector loaded is used kTokens times, each token vector kRows
// times. y[t * n_out + r] for t < kTokens, r < kRows (pointers pre-offset).
// At most 8 accumulators (2x4 or 8x1), so all stay in the 16 ymm registers.
template <int kRows, int kTokens>
void weight_rows_times_tokens(float* y, const float* x, const float* w, int64_t n_in, int64_t n_out) {
  __m256 acc[kRows][kTokens];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + kLanes <= n_in; i += kLanes) {
    __m256 w_vec[kRows];
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) w_vec[r] = _mm256_loadu_ps(w + r * n_in + i);
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) {
      const __m256 x_vec = _mm256_loadu_ps(x + t * n_in + i);
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) acc[r][t] = _mm256_fmadd_ps(w_vec[r], x_vec, acc[r][t]);
    }
  }
  if (i < n_in) {
    const __m256i mask = tail_mask(n_in - i);
    __m256 w_vec[kRows];
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) w_vec[r] = _mm256_maskload_ps(w + r * n_in + i, mask);
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) {
      const __m256 x_vec = _mm256_maskload_ps(x + t * n_in + i, mask);
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) acc[r][t] = _mm256_fmadd_ps(w_vec[r], x_vec, acc[r][t]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) y[t * n_out + r] = horizontal_sum(acc[r][t]);
  }
}

template <int kRows>
void weight_rows_times_token_group(float* y, const float* x, const float* w, int64_t n_tokens,
                                   int64_t n_in, int64_t n_out) {
  switch (n_tokens) {
    case 4: weight_rows_times_tokens<kRows, 4>(y, x, w, n_in, n_out); break;
    case 3: weight_rows_times_tokens<kRows, 3>(y, x, w, n_in, n_out); break;
    case 2: weight_rows_times_tokens<kRows, 2>(y, x, w, n_in, n_out); break;
    default: weight_rows_times_tokens<kRows, 1>(y, x, w, n_in, n_out); break;
  }
}

// Eight values of a KV cache row as floats: f32 as they are, f16 (its bits)
// widened, which is exact. The _tail forms load the first rem (1..7) values
// and zeros after, never touching p[rem] and beyond.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load8_tail(const float* p, int64_t rem) { return _mm256_maskload_ps(p, tail_mask(rem)); }
inline __m256 load8_tail(const uint16_t* p, int64_t rem) {
  uint16_t padded[kLanes] = {};
  for (int64_t i = 0; i < rem; ++i) padded[i] = p[i];
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(padded)));
}

// dot()'s arithmetic, inlined where attention needs it once per position and
// head; with f16 b, the same arithmetic on b's widened values.
template <class T>
inline float dot_body(const float* a, const T* b, int64_t n) {
  // Four independent chains hide the FMA latency (4 cycles, 2 per cycle).
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load8(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), load8(b + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), load8(b + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), load8(b + i + 24), acc3);
  }
  for (; i + kLanes <= n; i += kLanes) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load8(b + i), acc0);
  }
  if (i < n) {
    acc1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, tail_mask(n - i)), load8_tail(b + i, n - i), acc1);
  }
  return horizontal_sum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

// axpy()'s arithmetic, inlined where attention needs it once per position
// and head; with f16 x, the same arithmetic on x's widened values.
template <class T>
inline void axpy_body(float* y, float a, const T* x, int64_t n) {
  const __m256 a_vec = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a_vec, load8(x + i), _mm256_loadu_ps(y + i)));
  }
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    const __m256 sum = _mm256_fmadd_ps(a_vec, load8_tail(x + i, n - i), _mm256_maskload_ps(y + i, mask));
    _mm256_maskstore_ps(y + i, mask, sum);
  }
}

}  // namespace

float dot(const float* a, const float* b, int64_t n) { return dot_body(a, b, n); }

void matmul_rows(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in,
                 int64_t n_out, int64_t row_begin, int64_t row_end) {
  if (n_tokens == 1) {
    // Matvec, bound by reading w. Eight rows at a time: eight independent
    // accumulators, and eight concurrent read streams keep more cache misses
    // in flight than one row at a time (measured ~48 vs ~40 GB/s, 1 core).
    int64_t r = row_begin;
    for (; r + 8 <= row_end; r += 8) weight_rows_times_tokens<8, 1>(y + r, x, w + r * n_in, n_in, n_out);
    for (; r < row_end; ++r) y[r] = dot(x, w + r * n_in, n_in);
    return;
  }
  const int64_t block = matmul_token_block(n_in);
  for (int64_t t0 = 0; t0 < n_tokens; t0 += block) {
    const int64_t t1 = min_i64(n_tokens, t0 + block);
    // Two weight rows x up to four tokens: 6 loads per 8 FMAs. The two rows
    // stay in L1/L2 while the block's token groups go past them.
    for (int64_t r = row_begin; r < row_end; r += 2) {
      const bool two_rows = r + 2 <= row_end;
      for (int64_t t = t0; t < t1; t += 4) {
        float* y_tile = y + t * n_out + r;
        const float* x_tile = x + t * n_in;
        const int64_t group = min_i64(4, t1 - t);
        if (two_rows) {
          weight_rows_times_token_group<2>(y_tile, x_tile, w + r * n_in, group, n_in, n_out);
        } else {
          weight_rows_times_token_group<1>(y_tile, x_tile, w + r * n_in, group, n_in, n_out);
        }
      }
    }
  }
}

void axpy(float* y, float a, const float* x, int64_t n) { axpy_body(y, a, x, n); }

void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps) {
  const float mean_square = dot(x, x, n) / static_cast<float>(n);
  const __m256 scale = _mm256_set1_ps(1.0f / __builtin_sqrtf(mean_square + eps));
  // One pass, each x[i] read before out[i] is written: out may alias x.
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(x + i), scale);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(scaled, _mm256_loadu_ps(w + i)));
  }
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    const __m256 scaled = _mm256_mul_ps(_mm256_maskload_ps(x + i, mask), scale);
    _mm256_maskstore_ps(out + i, mask, _mm256_mul_ps(scaled, _mm256_maskload_ps(w + i, mask)));
  }
}

void softmax(float* x, int64_t n) {
  const __m256 minus_inf = _mm256_set1_ps(-__builtin_inff());
  __m256 max_vec = minus_inf;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) max_vec = _mm256_max_ps(max_vec, _mm256_loadu_ps(x + i));
  const int64_t rem = n - i;
  const __m256i mask = tail_mask(rem);  // rem == 0 gives an all-clear mask
  // Masked-off lanes load as 0, which could exceed an all-negative max.
  max_vec = _mm256_max_ps(
      max_vec, _mm256_blendv_ps(minus_inf, _mm256_maskload_ps(x + i, mask), _mm256_castsi256_ps(mask)));
  // Subtracting the max keeps every exp in (0, 1]: no overflow for any input.
  const __m256 max_value = _mm256_set1_ps(horizontal_max(max_vec));

  __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
  for (i = 0; i + 2 * kLanes <= n; i += 2 * kLanes) {
    const __m256 e0 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), max_value));
    const __m256 e1 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), max_value));
    _mm256_storeu_ps(x + i, e0);
    _mm256_storeu_ps(x + i + 8, e1);
    sum0 = _mm256_add_ps(sum0, e0);
    sum1 = _mm256_add_ps(sum1, e1);
  }
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), max_value));
    _mm256_storeu_ps(x + i, e);
    sum0 = _mm256_add_ps(sum0, e);
  }
  if (rem > 0) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), max_value));
    _mm256_maskstore_ps(x + i, mask, e);
    sum1 = _mm256_add_ps(sum1, _mm256_and_ps(e, _mm256_castsi256_ps(mask)));
  }

  const __m256 inv_sum = _mm256_set1_ps(1.0f / horizontal_sum(_mm256_add_ps(sum0, sum1)));
  for (i = 0; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv_sum));
  }
  if (rem > 0) _mm256_maskstore_ps(x + i, mask, _mm256_mul_ps(_mm256_maskload_ps(x + i, mask), inv_sum));
}

void swiglu(float* out, const float* gate, const float* up, int64_t n) {
  // silu(g) = g / (1 + e^-g); for g << 0, e^-g is +inf and silu is -0, the
  // right limit. Each gate[i] is read before out[i] is written: may alias.
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  auto swiglu_vec = [&](__m256 g, __m256 u) {
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, exp_ps(_mm256_xor_ps(g, sign_bit))));
    return _mm256_mul_ps(silu, u);
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(out + i, swiglu_vec(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  }
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    _mm256_maskstore_ps(out + i, mask,
                        swiglu_vec(_mm256_maskload_ps(gate + i, mask), _mm256_maskload_ps(up + i, mask)));
  }
}

void add(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
  }
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, mask,
                        _mm256_add_ps(_mm256_maskload_ps(y + i, mask), _mm256_maskload_ps(x + i, mask)));
  }
}

namespace {

// attend_heads' arithmetic: this file's dot, softmax and axpy, inlined.
struct Ops {
  template <class T>
  static float dot(const float* a, const T* b, int64_t n) { return dot_body(a, b, n); }
  static void softmax(float* x, int64_t n) { avx2::softmax(x, n); }
  template <class T>
  static void axpy(float* y, float a, const T* x, int64_t n) { axpy_body(y, a, x, n); }
  // Into L2, not L1: attend_heads requests a whole block of rows ahead (24 KB
  // for 6 heads of 64), which beside the block in use overflows a 32 KB L1.
  // A concurrency-16 step's attention on Zen 4: 3.2-3.3 ms with T0, 2.1-2.5
  // with T2, 3.2 with no prefetch (docs/benchmarks.md, "Token groups of at
  // most 10, and attention's prefetch into L2").
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T2); }
};

}  // namespace

void attention_heads(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t n_pos,
                     const AttentionHeads& heads, float* scratch) {
  attend_heads<Ops>(out, q, k_cache, v_cache, n_pos, ContiguousRows{n_pos}, heads, scratch);
}

void attention_heads_paged(float* out, const float* q, const float* k_pool, const float* v_pool, int64_t n_pos,
                           const int32_t* block_table, int64_t block_size, const AttentionHeads& heads,
                           float* scratch) {
  attend_heads<Ops>(out, q, k_pool, v_pool, n_pos, PagedRows{n_pos, block_table, block_size}, heads, scratch);
}

void attention_heads_paged_f16(float* out, const float* q, const uint16_t* k_pool, const uint16_t* v_pool,
                               int64_t n_pos, const int32_t* block_table, int64_t block_size,
                               const AttentionHeads& heads, float* scratch) {
  attend_heads<Ops>(out, q, k_pool, v_pool, n_pos, PagedRows{n_pos, block_table, block_size}, heads, scratch);
}

void f16_from_f32_row(uint16_t* out, const float* in, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m128i halves = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), halves);
  }
  if (i < n) {
    uint16_t padded[kLanes];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(padded),
                     _mm256_cvtps_ph(_mm256_maskload_ps(in + i, tail_mask(n - i)), _MM_FROUND_TO_NEAREST_INT));
    for (int64_t j = 0; i + j < n; ++j) out[i + j] = padded[j];
  }
}

double fma_loop(int64_t iterations) {
  // Two FMA units x 4 cycles of latency keep 8 chains busy; 12 leave room.
  constexpr int kChains = 12;
  const __m256 scale = _mm256_set1_ps(0.999f), step = _mm256_set1_ps(0.001f);
  __m256 acc[kChains];
#pragma GCC unroll 12
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(c));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], scale, step);
  }
  __m256 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  volatile float kept = horizontal_sum(sum);  // used, so the loop must run
  (void)kept;
  return 2.0 * kLanes * kChains * static_cast<double>(iterations);
}

}  // namespace tandem::cpu::avx2
