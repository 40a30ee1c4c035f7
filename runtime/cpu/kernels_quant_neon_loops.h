// The NEON quantized kernels' loops, shared by kernels_quant_neon.cc (plain
// AArch64) and kernels_quant_neon_dotprod.cc (the same with
// -march=armv8.2-a+dotprod). Each includes this into its own anonymous
// namespace, so every function here is compiled once per file under that
// file's flags: the plain file can never contain an sdot. Include nowhere else.
#pragma once

#include <arm_neon.h>

#include <cstdint>

#include "runtime/cpu/kernels_quant_internal.h"
#include "runtime/cpu/kernels_quant_q4k.h"

namespace tandem::cpu::neon {
namespace {

constexpr int kQ8Bytes = 34, kQ4Bytes = 18;  // quant_blocks.h's, not included for the rule above

inline float f16_scale(const uint8_t* block) {
  __fp16 h;
  __builtin_memcpy(&h, block, 2);
  return static_cast<float>(h);
}

inline float f16_value(const uint16_t* p) { return f16_scale(reinterpret_cast<const uint8_t*>(p)); }

inline float bf16_value(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

// Q4_0 block's 16 bytes -> elements 0..15 and 16..31 as q - 8 in [-8, 7].
inline int8x16x2_t q4_values(const uint8_t* nibbles) {
  const uint8x16_t bytes = vld1q_u8(nibbles);
  const int8x16_t eight = vdupq_n_s8(8);
  int8x16x2_t v;
  v.val[0] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(bytes, vdupq_n_u8(0x0f))), eight);
  v.val[1] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(bytes, 4)), eight);
  return v;
}

// sum over blocks of scale_w * scale_x * (integer dot), the integer dot from
// `products(a0, a1, x)`; `values(block)` gives the weights as two int8x16.
template <int kBlockBytes, typename Values, typename Products>
inline float q_row(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks, Values values,
                   Products products) {
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  int64_t b = 0;
  for (; b + 2 <= n_blocks; b += 2, w_row += 2 * kBlockBytes) {
    const int8x16x2_t w0 = values(w_row), w1 = values(w_row + kBlockBytes);
    const float32x4_t p0 = vcvtq_f32_s32(products(w0.val[0], w0.val[1], x[b]));
    const float32x4_t p1 = vcvtq_f32_s32(products(w1.val[0], w1.val[1], x[b + 1]));
    acc0 = vfmaq_n_f32(acc0, p0, f16_scale(w_row) * x[b].scale);
    acc1 = vfmaq_n_f32(acc1, p1, f16_scale(w_row + kBlockBytes) * x[b + 1].scale);
  }
  if (b < n_blocks) {
    const int8x16x2_t w0 = values(w_row);
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(products(w0.val[0], w0.val[1], x[b])), f16_scale(w_row) * x[b].scale);
  }
  return vaddvq_f32(vaddq_f32(acc0, acc1));
}

// Q4_K: chunk c's 32 bytes hold sub-block 2c (low nibbles, elements 0-15 in
// the first 16 bytes, 16-31 in the next) and 2c + 1 (high nibbles); nibbles
// fit int8 as they are. The mins are q4k_factors' offset.
template <typename Products>
inline float q4_k_row(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super, Products products) {
  const uint8x16_t low_mask = vdupq_n_u8(0x0f);
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  float offsets = 0.0f;
  for (int64_t s = 0; s < n_super; ++s, w_row += kQ4KSuperBytes, x += 8) {
    const Q4KFactors f = q4k_factors(w_row + 4, f16_scale(w_row), f16_scale(w_row + 2), x);
    offsets += f.offset;
    for (int c = 0; c < 4; ++c) {
      const uint8x16_t b0 = vld1q_u8(w_row + kQ4KNibbleOffset + 32 * c);
      const uint8x16_t b1 = vld1q_u8(w_row + kQ4KNibbleOffset + 32 * c + 16);
      const int8x16_t low0 = vreinterpretq_s8_u8(vandq_u8(b0, low_mask));
      const int8x16_t low1 = vreinterpretq_s8_u8(vandq_u8(b1, low_mask));
      const int8x16_t high0 = vreinterpretq_s8_u8(vshrq_n_u8(b0, 4));
      const int8x16_t high1 = vreinterpretq_s8_u8(vshrq_n_u8(b1, 4));
      acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(products(low0, low1, x[2 * c])), f.factor[2 * c]);
      acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(products(high0, high1, x[2 * c + 1])), f.factor[2 * c + 1]);
    }
  }
  return vaddvq_f32(vaddq_f32(acc0, acc1)) - offsets;
}

inline int8x16x2_t q8_values(const uint8_t* block) {
  int8x16x2_t v;
  v.val[0] = vld1q_s8(reinterpret_cast<const int8_t*>(block + 2));
  v.val[1] = vld1q_s8(reinterpret_cast<const int8_t*>(block + 18));
  return v;
}

inline int8x16x2_t q4_block_values(const uint8_t* block) { return q4_values(block + 2); }

}  // namespace
}  // namespace tandem::cpu::neon
