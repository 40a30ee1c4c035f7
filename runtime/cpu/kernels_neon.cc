// NEON (Advanced SIMD) kernels for AArch64, the DGX Spark's Grace CPU. Built
// only for aarch64, where NEON is part of the architecture: no extra compiler
// flags and no run-time check are needed, unlike AVX2 on x86. Still:
//  - no inline function from a shared header is instantiated here (no
//    std::min, std::exp, TANDEM_CHECK...), the rule kernels_avx2.cc states:
//    harmless today, but the day this file gains -march=...+dotprod or +sve2
//    flags, the linker could keep this file's copy of an inline function for
//    the whole program and run it on a CPU without those features.
//  - every load is unaligned (vld1q_f32 allows it): weights come from an mmap
//    at a 4-byte offset.
//  - NEON has no masked loads, so tails (n % 4) go through a zero-padded
//    4-float copy: the tail uses the same vector code (and the same exp) as
//    the body, and nothing past n is read or written.
#include <arm_neon.h>

#include <cstdint>

#include "runtime/cpu/attention_rows.h"
#include "runtime/cpu/kernels_internal.h"

namespace tandem::cpu::neon {
namespace {

constexpr int64_t kLanes = 4;

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// The first `rem` (0..3) values of p, then `fill`.
inline float32x4_t load_partial(const float* p, int64_t rem, float fill) {
  float padded[kLanes] = {fill, fill, fill, fill};
  for (int64_t i = 0; i < rem; ++i) padded[i] = p[i];
  return vld1q_f32(padded);
}

inline void store_partial(float* p, float32x4_t v, int64_t rem) {
  float padded[kLanes];
  vst1q_f32(padded, v);
  for (int64_t i = 0; i < rem; ++i) p[i] = padded[i];
}

// e^x to ~1 ulp: the Cephes expf of kernels_avx2.cc (x = n*ln2 + r,
// |r| <= ln2/2, degree-6 polynomial for e^r), with 2^n applied as two halves
// so subnormal and overflowing results round like IEEE instead of wrapping
// the exponent field. FMIN/FMAX propagate NaN, so NaN in gives NaN out.
inline float32x4_t exp_ps(float32x4_t x) {
  x = vminq_f32(vdupq_n_f32(88.8f), vmaxq_f32(vdupq_n_f32(-104.0f), x));
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
  // ln2 in two parts so n * ln2_hi is exact and r keeps its low bits.
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
  const float32x4_t e_r = vaddq_f32(vfmaq_f32(r, p, vmulq_f32(r, r)), vdupq_n_f32(1.0f));
  const int32x4_t n_int = vcvtq_s32_f32(n);  // exact: n is integral, in [-150, 129]
  const int32x4_t n_half = vshrq_n_s32(n_int, 1);
  const int32x4_t n_rest = vsubq_s32(n_int, n_half);
  const int32x4_t bias = vdupq_n_s32(127);
  const float32x4_t scale_half = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n_half, bias), 23));
  const float32x4_t scale_rest = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n_rest, bias), 23));
  return vmulq_f32(vmulq_f32(e_r, scale_half), scale_rest);
}

// kRows weight rows against kTokens token rows in one pass over the rows:
// each weight vector loaded is used kTokens times, each token vector kRows
// times. y[t * n_out + r] for t < kTokens, r < kRows (pointers pre-offset).
// AArch64 has 32 vector registers (AVX2 has 16), so up to 16 accumulators
// plus the kRows weight vectors and one token vector stay in registers.
template <int kRows, int kTokens>
void weight_rows_times_tokens(float* y, const float* x, const float* w, int64_t n_in, int64_t n_out) {
  float32x4_t acc[kRows][kTokens];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) acc[r][t] = vdupq_n_f32(0.0f);
  }
  int64_t i = 0;
  for (; i + kLanes <= n_in; i += kLanes) {
    float32x4_t w_vec[kRows];
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) w_vec[r] = vld1q_f32(w + r * n_in + i);
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) {
      const float32x4_t x_vec = vld1q_f32(x + t * n_in + i);
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) acc[r][t] = vfmaq_f32(acc[r][t], w_vec[r], x_vec);
    }
  }
  if (i < n_in) {
    const int64_t rem = n_in - i;
    float32x4_t w_vec[kRows];
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) w_vec[r] = load_partial(w + r * n_in + i, rem, 0.0f);
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) {
      const float32x4_t x_vec = load_partial(x + t * n_in + i, rem, 0.0f);
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) acc[r][t] = vfmaq_f32(acc[r][t], w_vec[r], x_vec);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) y[t * n_out + r] = vaddvq_f32(acc[r][t]);
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

// Four values of a KV cache row as floats: f32 as they are, f16 (its bits)
// widened, which is exact. The _partial forms load the first rem (0..3)
// values and zeros after, never touching p[rem] and beyond.
inline float32x4_t load4(const float* p) { return vld1q_f32(p); }
inline float32x4_t load4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
inline float32x4_t load4_partial(const float* p, int64_t rem) { return load_partial(p, rem, 0.0f); }
inline float32x4_t load4_partial(const uint16_t* p, int64_t rem) {
  uint16_t padded[kLanes] = {};
  for (int64_t i = 0; i < rem; ++i) padded[i] = p[i];
  return load4(padded);
}

// dot()'s arithmetic, inlined where attention needs it once per position and
// head; with f16 b, the same arithmetic on b's widened values.
template <class T>
inline float dot_body(const float* a, const T* b, int64_t n) {
  // Four independent chains hide the FMA latency (4 cycles on Neoverse/X925).
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  float32x4_t acc2 = vdupq_n_f32(0.0f), acc3 = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), load4(b + i));
    acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), load4(b + i + 4));
    acc2 = vfmaq_f32(acc2, vld1q_f32(a + i + 8), load4(b + i + 8));
    acc3 = vfmaq_f32(acc3, vld1q_f32(a + i + 12), load4(b + i + 12));
  }
  for (; i + kLanes <= n; i += kLanes) acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), load4(b + i));
  if (i < n) {
    acc1 = vfmaq_f32(acc1, load_partial(a + i, n - i, 0.0f), load4_partial(b + i, n - i));
  }
  return vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
}

// axpy()'s arithmetic, inlined where attention needs it once per position
// and head; with f16 x, the same arithmetic on x's widened values.
template <class T>
inline void axpy_body(float* y, float a, const T* x, int64_t n) {
  const float32x4_t a_vec = vdupq_n_f32(a);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), a_vec, load4(x + i)));
  if (i < n) {
    const int64_t rem = n - i;
    store_partial(y + i, vfmaq_f32(load_partial(y + i, rem, 0.0f), a_vec, load4_partial(x + i, rem)), rem);
  }
}

}  // namespace

float dot(const float* a, const float* b, int64_t n) { return dot_body(a, b, n); }

void matmul_rows(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in,
                 int64_t n_out, int64_t row_begin, int64_t row_end) {
  if (n_tokens == 1) {
    // Matvec, bound by reading w: eight rows at a time give eight independent
    // accumulators and eight concurrent read streams, as on AVX2.
    int64_t r = row_begin;
    for (; r + 8 <= row_end; r += 8) weight_rows_times_tokens<8, 1>(y + r, x, w + r * n_in, n_in, n_out);
    for (; r < row_end; ++r) y[r] = dot(x, w + r * n_in, n_in);
    return;
  }
  const int64_t block = matmul_token_block(n_in);
  for (int64_t t0 = 0; t0 < n_tokens; t0 += block) {
    const int64_t t1 = min_i64(n_tokens, t0 + block);
    // Four weight rows x up to four tokens: 8 loads per 16 FMAs (AVX2 can
    // afford only 2 rows). The rows stay in L1/L2 while the block's token
    // groups go past them; leftover rows go one at a time.
    int64_t r = row_begin;
    for (; r + 4 <= row_end; r += 4) {
      for (int64_t t = t0; t < t1; t += 4) {
        weight_rows_times_token_group<4>(y + t * n_out + r, x + t * n_in, w + r * n_in,
                                         min_i64(4, t1 - t), n_in, n_out);
      }
    }
    for (; r < row_end; ++r) {
      for (int64_t t = t0; t < t1; t += 4) {
        weight_rows_times_token_group<1>(y + t * n_out + r, x + t * n_in, w + r * n_in,
                                         min_i64(4, t1 - t), n_in, n_out);
      }
    }
  }
}

void axpy(float* y, float a, const float* x, int64_t n) { axpy_body(y, a, x, n); }

void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps) {
  const float mean_square = dot(x, x, n) / static_cast<float>(n);
  const float32x4_t scale = vdupq_n_f32(1.0f / __builtin_sqrtf(mean_square + eps));
  // One pass, each x[i] read before out[i] is written: out may alias x.
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    vst1q_f32(out + i, vmulq_f32(vmulq_f32(vld1q_f32(x + i), scale), vld1q_f32(w + i)));
  }
  if (i < n) {
    const int64_t rem = n - i;
    const float32x4_t scaled = vmulq_f32(load_partial(x + i, rem, 0.0f), scale);
    store_partial(out + i, vmulq_f32(scaled, load_partial(w + i, rem, 0.0f)), rem);
  }
}

void softmax(float* x, int64_t n) {
  float32x4_t max_vec = vdupq_n_f32(-__builtin_inff());
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) max_vec = vmaxq_f32(max_vec, vld1q_f32(x + i));
  const int64_t rem = n - i;
  // Padding with -inf: a 0 pad could exceed an all-negative max.
  if (rem > 0) max_vec = vmaxq_f32(max_vec, load_partial(x + i, rem, -__builtin_inff()));
  // Subtracting the max keeps every exp in (0, 1]: no overflow for any input.
  const float32x4_t max_value = vdupq_n_f32(vmaxvq_f32(max_vec));

  float32x4_t sum0 = vdupq_n_f32(0.0f), sum1 = vdupq_n_f32(0.0f);
  for (i = 0; i + 2 * kLanes <= n; i += 2 * kLanes) {
    const float32x4_t e0 = exp_ps(vsubq_f32(vld1q_f32(x + i), max_value));
    const float32x4_t e1 = exp_ps(vsubq_f32(vld1q_f32(x + i + 4), max_value));
    vst1q_f32(x + i, e0);
    vst1q_f32(x + i + 4, e1);
    sum0 = vaddq_f32(sum0, e0);
    sum1 = vaddq_f32(sum1, e1);
  }
  for (; i + kLanes <= n; i += kLanes) {
    const float32x4_t e = exp_ps(vsubq_f32(vld1q_f32(x + i), max_value));
    vst1q_f32(x + i, e);
    sum0 = vaddq_f32(sum0, e);
  }
  if (rem > 0) {
    const float32x4_t e = exp_ps(vsubq_f32(load_partial(x + i, rem, 0.0f), max_value));
    store_partial(x + i, e, rem);
    // The pad lanes' e^(0 - max) must not join the sum.
    const int32_t lane_ids[kLanes] = {0, 1, 2, 3};
    const uint32x4_t in_tail = vcltq_s32(vld1q_s32(lane_ids), vdupq_n_s32(static_cast<int32_t>(rem)));
    sum1 = vaddq_f32(sum1, vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(e), in_tail)));
  }

  const float32x4_t inv_sum = vdupq_n_f32(1.0f / vaddvq_f32(vaddq_f32(sum0, sum1)));
  for (i = 0; i + kLanes <= n; i += kLanes) vst1q_f32(x + i, vmulq_f32(vld1q_f32(x + i), inv_sum));
  if (rem > 0) store_partial(x + i, vmulq_f32(load_partial(x + i, rem, 0.0f), inv_sum), rem);
}

void swiglu(float* out, const float* gate, const float* up, int64_t n) {
  // silu(g) = g / (1 + e^-g); for g << 0, e^-g is +inf and silu is -0, the
  // right limit. Each gate[i] is read before out[i] is written: may alias.
  const float32x4_t one = vdupq_n_f32(1.0f);
  auto swiglu_vec = [&](float32x4_t g, float32x4_t u) {
    return vmulq_f32(vdivq_f32(g, vaddq_f32(one, exp_ps(vnegq_f32(g)))), u);
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) vst1q_f32(out + i, swiglu_vec(vld1q_f32(gate + i), vld1q_f32(up + i)));
  if (i < n) {
    const int64_t rem = n - i;
    store_partial(out + i, swiglu_vec(load_partial(gate + i, rem, 0.0f), load_partial(up + i, rem, 0.0f)),
                  rem);
  }
}

void add(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vld1q_f32(x + i)));
  if (i < n) {
    const int64_t rem = n - i;
    store_partial(y + i, vaddq_f32(load_partial(y + i, rem, 0.0f), load_partial(x + i, rem, 0.0f)), rem);
  }
}

namespace {

// attend_heads' arithmetic: this file's dot, softmax and axpy, inlined.
struct Ops {
  template <class T>
  static float dot(const float* a, const T* b, int64_t n) { return dot_body(a, b, n); }
  static void softmax(float* x, int64_t n) { neon::softmax(x, n); }
  template <class T>
  static void axpy(float* y, float a, const T* x, int64_t n) { axpy_body(y, a, x, n); }
  static void prefetch(const void* p) { __builtin_prefetch(p); }
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
  // FCVTN rounds to nearest even (the FPCR default) and keeps subnormals.
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) vst1_u16(out + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(in + i))));
  if (i < n) {
    uint16_t padded[kLanes];
    vst1_u16(padded, vreinterpret_u16_f16(vcvt_f16_f32(load_partial(in + i, n - i, 0.0f))));
    for (int64_t j = 0; i + j < n; ++j) out[i + j] = padded[j];
  }
}

double fma_loop(int64_t iterations) {
  // Four 128-bit FMA units (Neoverse V2) x 4 cycles of latency keep 16
  // chains busy; 24 leave room in the 32 registers.
  constexpr int kChains = 24;
  const float32x4_t scale = vdupq_n_f32(0.999f), step = vdupq_n_f32(0.001f);
  float32x4_t acc[kChains];
#pragma GCC unroll 24
  for (int c = 0; c < kChains; ++c) acc[c] = vdupq_n_f32(static_cast<float>(c));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (int c = 0; c < kChains; ++c) acc[c] = vfmaq_f32(step, acc[c], scale);
  }
  float32x4_t sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = vaddq_f32(sum, acc[c]);
  volatile float kept = vaddvq_f32(sum);  // used, so the loop must run
  (void)kept;
  return 2.0 * 4 * kChains * static_cast<double>(iterations);
}

}  // namespace tandem::cpu::neon
