// The AVX-512 quantized kernels' loops, shared by kernels_quant_avx512.cc
// (-mavx512f -mavx512bw -mavx512vl) and kernels_quant_avx512_vnni.cc (the same
// plus -mavx512vnni). Each includes this into its own anonymous namespace, so
// every function here is compiled once per file, under that file's flags: the
// plain file can never contain a VNNI instruction. Include nowhere else.
//
// Q8_0: vpdpbusd (VNNI) or maddubs + madd multiply unsigned by signed bytes, so
// |w| is the unsigned side and x takes w's sign (ggml's trick); activations are
// in [-127, 127], so no int16 sum saturates. Q4_0's nibbles are unsigned
// already: sum (n - 8) * x = sum n * x - sum 8 * x.
#pragma once

#include "runtime/cpu/avx512_intrinsics.h"  // GCC 12 bug 105593's false warnings silenced there

#include <cstdint>

#include "runtime/cpu/kernels_quant_internal.h"
#include "runtime/cpu/kernels_quant_q4k.h"
#include "runtime/cpu/kernels_quant_q4k_x86.h"

namespace tandem::cpu::avx512 {
namespace {

constexpr int kQ8Bytes = 34, kQ4Bytes = 18;  // quant_blocks.h's, not included for the rule above

inline float f16_scale(const uint8_t* block) {
  uint16_t h;
  __builtin_memcpy(&h, block, 2);
  return _cvtsh_ss(h);
}

inline __m512i join(__m256i low, __m256i high) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
}

inline __m256i load_q(const ActivationBlock& x) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q));
}

// Q4_0 block's 16 bytes -> its 32 nibbles (0..15), elements in order.
inline __m256i q4_nibbles(const uint8_t* nibbles) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(nibbles));
  const __m128i low_mask = _mm_set1_epi8(0x0f);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low_mask), _mm_and_si128(bytes, low_mask));
}

// Block b's scale in the low 8 lanes, block b + 1's in the high 8.
inline __m512 pair_scales(float low, float high) {
  return _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(low), _mm512_set1_ps(high));
}

// The sign trick's operands: |w| (unsigned) and x with w's sign.
struct SignedPair {
  __m512i w_abs, x_signed;
};
inline SignedPair sign_trick(__m512i w, __m512i x) {
  const __mmask64 negative = _mm512_movepi8_mask(w);
  return {_mm512_abs_epi8(w), _mm512_mask_sub_epi8(x, negative, _mm512_setzero_si512(), x)};
}

// The row loops take the instruction that sums unsigned x signed byte
// products into int32 lanes as `Products::of(u, s)`: maddubs + madd in
// kernels_quant_avx512.cc, vpdpbusd in kernels_quant_avx512_vnni.cc.
template <typename Products>
inline float q8_0_row(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  __m512 acc = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= n_blocks; b += 2, w_row += 2 * kQ8Bytes) {
    const __m512i w = join(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w_row + 2)),
                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w_row + kQ8Bytes + 2)));
    const SignedPair p = sign_trick(w, join(load_q(x[b]), load_q(x[b + 1])));
    const __m512 products = _mm512_cvtepi32_ps(Products::of(p.w_abs, p.x_signed));
    const __m512 scales = pair_scales(f16_scale(w_row) * x[b].scale, f16_scale(w_row + kQ8Bytes) * x[b + 1].scale);
    acc = _mm512_fmadd_ps(scales, products, acc);
  }
  if (b < n_blocks) {  // an odd block: the high half multiplies zeros
    const __m512i w = join(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w_row + 2)), _mm256_setzero_si256());
    const SignedPair p = sign_trick(w, join(load_q(x[b]), _mm256_setzero_si256()));
    const __m512 products = _mm512_cvtepi32_ps(Products::of(p.w_abs, p.x_signed));
    acc = _mm512_fmadd_ps(pair_scales(f16_scale(w_row) * x[b].scale, 0.0f), products, acc);
  }
  return _mm512_reduce_add_ps(acc);
}

template <typename Products>
inline float q4_0_row(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  const __m512i eights = _mm512_set1_epi8(8);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; b += 2, w_row += 2 * kQ4Bytes) {
    const bool pair = b + 1 < n_blocks;  // else the high half multiplies zeros
    const __m512i nibbles = join(q4_nibbles(w_row + 2), pair ? q4_nibbles(w_row + kQ4Bytes + 2) : _mm256_setzero_si256());
    const __m512i q = join(load_q(x[b]), pair ? load_q(x[b + 1]) : _mm256_setzero_si256());
    const __m512i sums = _mm512_sub_epi32(Products::of(nibbles, q), Products::of(eights, q));
    const float high = pair ? f16_scale(w_row + kQ4Bytes) * x[b + 1].scale : 0.0f;
    acc = _mm512_fmadd_ps(pair_scales(f16_scale(w_row) * x[b].scale, high), _mm512_cvtepi32_ps(sums), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

// Q4_K: each 32-byte chunk of nibbles holds two sub-blocks (low and high
// nibbles), which fill one register against their two activation blocks.
// Nibbles are the unsigned side as they are; the factors and the mins' offset
// come from q4k_factors_x86.
template <typename Products>
inline float q4_k_row(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super) {
  const __m256i low_mask = _mm256_set1_epi8(0x0f);
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  __m256 offsets = _mm256_setzero_ps();
  for (int64_t s = 0; s < n_super; ++s, w_row += kQ4KSuperBytes, x += 8) {
    const __m512 factors =
        _mm512_castps256_ps512(q4k_factors_x86(w_row + 4, f16_scale(w_row), f16_scale(w_row + 2), x, &offsets));
    for (int c = 0; c < 4; ++c) {
      const __m256i bytes =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w_row + kQ4KNibbleOffset + 32 * c));
      const __m512i nibbles =
          join(_mm256_and_si256(bytes, low_mask), _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_mask));
      const __m512i q = join(load_q(x[2 * c]), load_q(x[2 * c + 1]));
      const __m512 products = _mm512_cvtepi32_ps(Products::of(nibbles, q));
      // Factor 2c in the low 8 lanes, 2c + 1 in the high 8.
      const __m512i pick = _mm512_mask_blend_epi32(0xff00, _mm512_set1_epi32(2 * c), _mm512_set1_epi32(2 * c + 1));
      acc[c & 1] = _mm512_fmadd_ps(_mm512_permutexvar_ps(pick, factors), products, acc[c & 1]);
    }
  }
  const __m128 halves = _mm_add_ps(_mm256_castps256_ps128(offsets), _mm256_extractf128_ps(offsets, 1));
  const __m128 pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
  const float offset = _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehdup_ps(pairs)));
  return _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1])) - offset;
}

inline __m512 load_f16x16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 load_bf16x16(const uint16_t* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

// f16/bf16 row against f32: two accumulators, the tail through masked loads
// (which never touch masked-off memory).
template <bool kBf16>
inline float wide_row(const uint16_t* w_row, const float* x, int64_t n) {
  auto load = [](const uint16_t* p) { return kBf16 ? load_bf16x16(p) : load_f16x16(p); };
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(load(w_row + i), _mm512_loadu_ps(x + i), acc0);
    acc1 = _mm512_fmadd_ps(load(w_row + i + 16), _mm512_loadu_ps(x + i + 16), acc1);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(load(w_row + i), _mm512_loadu_ps(x + i), acc0);
  if (i < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m256i halves = _mm256_maskz_loadu_epi16(mask, w_row + i);
    const __m512 w = kBf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16))
                           : _mm512_cvtph_ps(halves);
    acc1 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(mask, x + i), acc1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

}  // namespace
}  // namespace tandem::cpu::avx512
