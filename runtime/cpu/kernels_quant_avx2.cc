// AVX2 (+FMA, F16C) versions of the quantized kernels. Built with
// -mavx2 -mfma -mf16c and run only after best_isa() saw those features; the
// rules of kernels_avx2.cc hold here: no inline function from a shared header
// (no quant::f32_from_f16, std::min...), only intrinsics and builtins, and
// every load unaligned (Q blocks are 34 or 18 bytes long).
//
// Integer products use ggml's sign trick: maddubs multiplies unsigned by
// signed bytes, so |w| is the unsigned side and x takes w's sign. Products
// of int8 pairs sum to at most 2 * 128 * 127 per int16 lane: no saturation,
// since activations are in [-127, 127] (quantize_activations never makes -128).
#include <immintrin.h>

#include <cstdint>

#include "runtime/cpu/kernels_quant_internal.h"
#include "runtime/cpu/kernels_quant_q4k.h"
#include "runtime/cpu/kernels_quant_q4k_x86.h"

namespace tandem::cpu::avx2 {
namespace {

constexpr int kQ8Bytes = 34, kQ4Bytes = 18;  // quant_blocks.h's, not included for the rule above

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

inline float f16_scale(const uint8_t* block) {
  uint16_t h;
  __builtin_memcpy(&h, block, 2);
  return _cvtsh_ss(h);
}

// sum of w[i] * x[i] over 32 signed bytes, as 8 int32 partial sums.
inline __m256i products_i8(__m256i w, __m256i x) {
  const __m256i w_abs = _mm256_sign_epi8(w, w);
  const __m256i x_signed = _mm256_sign_epi8(x, w);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w_abs, x_signed), _mm256_set1_epi16(1));
}

// Q4_0 block's 16 bytes -> 32 values q - 8 in [-8, 7], elements in order.
inline __m256i q4_values(const uint8_t* nibbles) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(nibbles));
  const __m128i low_mask = _mm_set1_epi8(0x0f);
  const __m128i low = _mm_and_si128(bytes, low_mask);
  const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), low_mask);
  return _mm256_sub_epi8(_mm256_set_m128i(high, low), _mm256_set1_epi8(8));
}

inline __m256i load_q(const ActivationBlock& x) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q));
}

inline float bf16_value(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

inline __m256 load_bf16x8(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

inline __m256 load_f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

}  // namespace

void quantize_activations(ActivationBlock* out, const float* x, int64_t n_blocks) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n_blocks; ++b, x += kActivationBlock) {
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
    __m256 amax = _mm256_andnot_ps(sign_bit, v[0]);
    for (int k = 1; k < 4; ++k) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v[k]));
    // The same two roundings as scalar::quantize_activations, hence the same bits.
    const float scale = horizontal_max(amax) / 127.0f;
    const __m256 inverse = _mm256_set1_ps(scale != 0.0f ? 1.0f / scale : 0.0f);
    out[b].scale = scale;
    __m256i q[4];  // cvtps rounds to nearest even (the default MXCSR mode)
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], inverse));
    // packs interleaves the 128-bit lanes; the permute puts elements back in order.
    const __m256i q16_a = _mm256_packs_epi32(q[0], q[1]), q16_b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16_a, q16_b),
                                                   _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].q), q8);
    int32_t sum = 0;  // as scalar::quantize_activations: exact, so every version agrees
    for (int i = 0; i < kActivationBlock; ++i) sum += out[b].q[i];
    out[b].sum = sum;
  }
}

float dot_q8_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  // Two accumulators: consecutive blocks' FMAs do not wait on each other.
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t b = 0; b < n_blocks; ++b, w_row += kQ8Bytes) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w_row + 2));
    const __m256 products = _mm256_cvtepi32_ps(products_i8(w, load_q(x[b])));
    const __m256 scale = _mm256_set1_ps(f16_scale(w_row) * x[b].scale);
    acc[b & 1] = _mm256_fmadd_ps(scale, products, acc[b & 1]);
  }
  return horizontal_sum(_mm256_add_ps(acc[0], acc[1]));
}

float dot_q4_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t b = 0; b < n_blocks; ++b, w_row += kQ4Bytes) {
    const __m256 products = _mm256_cvtepi32_ps(products_i8(q4_values(w_row + 2), load_q(x[b])));
    const __m256 scale = _mm256_set1_ps(f16_scale(w_row) * x[b].scale);
    acc[b & 1] = _mm256_fmadd_ps(scale, products, acc[b & 1]);
  }
  return horizontal_sum(_mm256_add_ps(acc[0], acc[1]));
}

float dot_q4_k(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super) {
  // Nibbles are unsigned already: maddubs takes them as its unsigned side,
  // no sign trick (15 * 127 * 2 per int16 lane cannot saturate).
  const __m256i low_mask = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  __m256 offsets = _mm256_setzero_ps();
  for (int64_t s = 0; s < n_super; ++s, w_row += kQ4KSuperBytes, x += 8) {
    const __m256 factors = q4k_factors_x86(w_row + 4, f16_scale(w_row), f16_scale(w_row + 2), x, &offsets);
    for (int c = 0; c < 4; ++c) {  // chunk c: sub-block 2c in the low nibbles, 2c + 1 in the high
      const __m256i bytes =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w_row + kQ4KNibbleOffset + 32 * c));
      const __m256i low = _mm256_and_si256(bytes, low_mask);
      const __m256i high = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_mask);
      const __m256i p_low = _mm256_madd_epi16(_mm256_maddubs_epi16(low, load_q(x[2 * c])), ones);
      const __m256i p_high = _mm256_madd_epi16(_mm256_maddubs_epi16(high, load_q(x[2 * c + 1])), ones);
      const __m256 f_low = _mm256_permutevar8x32_ps(factors, _mm256_set1_epi32(2 * c));
      const __m256 f_high = _mm256_permutevar8x32_ps(factors, _mm256_set1_epi32(2 * c + 1));
      acc[0] = _mm256_fmadd_ps(f_low, _mm256_cvtepi32_ps(p_low), acc[0]);
      acc[1] = _mm256_fmadd_ps(f_high, _mm256_cvtepi32_ps(p_high), acc[1]);
    }
  }
  return horizontal_sum(_mm256_sub_ps(_mm256_add_ps(acc[0], acc[1]), offsets));
}

float dot_f16(const uint16_t* w_row, const float* x, int64_t n) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm256_fmadd_ps(load_f16x8(w_row + i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), acc[k]);
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_f16x8(w_row + i), _mm256_loadu_ps(x + i), acc[0]);
  float sum = horizontal_sum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += _cvtsh_ss(w_row[i]) * x[i];
  return sum;
}

float dot_bf16(const uint16_t* w_row, const float* x, int64_t n) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm256_fmadd_ps(load_bf16x8(w_row + i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), acc[k]);
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_bf16x8(w_row + i), _mm256_loadu_ps(x + i), acc[0]);
  float sum = horizontal_sum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += bf16_value(w_row[i]) * x[i];
  return sum;
}

}  // namespace tandem::cpu::avx2
