// Q4_K's per-super-block factors in AVX2 (kernels_quant_q4k.h's Q4KFactors,
// vectorised): eight pairs unpacked with 32-bit word operations and the
// activation scales and sums gathered, instead of ~120 scalar instructions
// per 256 weights, which left the AVX-512 kernel 1.4x slower than Q4_0's.
// Included by the AVX2 and AVX-512 kernel files only (built with -mavx2
// -mfma); internal linkage, as kernels_quant_q4k.h.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "runtime/cpu/kernels_quant.h"

namespace tandem::cpu {
namespace {

// Bytes j of *scales / *mins: sub-block j's 6-bit scale and min (the layout
// of runtime/quantize_q4k.h: pairs 4-7 take their top 2 bits from the spare
// top bits of bytes 0-3 / 4-7).
inline void q4k_unpack_pairs(const uint8_t* packed, uint64_t* scales, uint64_t* mins) {
  uint32_t a, b, c;
  __builtin_memcpy(&a, packed, 4);
  __builtin_memcpy(&b, packed + 4, 4);
  __builtin_memcpy(&c, packed + 8, 4);
  const uint32_t scales_high = (c & 0x0f0f0f0fu) | (((a >> 6) & 0x03030303u) << 4);
  const uint32_t mins_high = ((c >> 4) & 0x0f0f0f0fu) | (((b >> 6) & 0x03030303u) << 4);
  *scales = (a & 0x3f3f3f3fu) | (static_cast<uint64_t>(scales_high) << 32);
  *mins = (b & 0x3f3f3f3fu) | (static_cast<uint64_t>(mins_high) << 32);
}

// factors[j] = d * scale_j * s_j, and the mins' share of the row's sum,
// dmin * min_j * s_j * sum_j, added lane-wise into *offsets (summed once at
// the end of the row).
inline __m256 q4k_factors_x86(const uint8_t* packed, float d, float dmin, const ActivationBlock* x,
                              __m256* offsets) {
  static_assert(sizeof(ActivationBlock) == 40, "the gathers' stride is 10 words");
  uint64_t scales, mins;
  q4k_unpack_pairs(packed, &scales, &mins);
  const __m256i stride = _mm256_setr_epi32(0, 10, 20, 30, 40, 50, 60, 70);
  const __m256 x_scales = _mm256_i32gather_ps(&x[0].scale, stride, 4);
  const __m256 x_sums = _mm256_cvtepi32_ps(_mm256_i32gather_epi32(&x[0].sum, stride, 4));
  const __m256 scale_f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(scales))));
  const __m256 min_f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(mins))));
  *offsets = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(dmin), min_f), _mm256_mul_ps(x_scales, x_sums), *offsets);
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(d), scale_f), x_scales);
}

}  // namespace
}  // namespace tandem::cpu
