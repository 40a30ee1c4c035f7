// NEON versions of the quantized kernels for AArch64. Plain NEON multiplies
// int8 pairs into int16 (vmull) and pairs those into int32 (vpadal); the
// *_dotprod functions use the dot-product extension's sdot (four byte pairs
// per int32 lane in one instruction), carry a target attribute for it, and
// run only where kernels_quant.cc saw HWCAP_ASIMDDP. The rules of
// kernels_neon.cc hold: no inline function from a shared header, every load
// unaligned (Q blocks are 34 or 18 bytes long).
#include <arm_neon.h>

#include <cstdint>

#include "runtime/cpu/kernels_quant_internal.h"

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

// The integer dot product of one block: weights as two int8x16 against x.
struct PlainProducts {
  int32x4_t operator()(int8x16_t a0, int8x16_t a1, const ActivationBlock& x) const {
    const int8x16_t x0 = vld1q_s8(x.q), x1 = vld1q_s8(x.q + 16);
    int32x4_t sum = vpaddlq_s16(vmull_s8(vget_low_s8(a0), vget_low_s8(x0)));
    sum = vpadalq_s16(sum, vmull_high_s8(a0, x0));
    sum = vpadalq_s16(sum, vmull_s8(vget_low_s8(a1), vget_low_s8(x1)));
    return vpadalq_s16(sum, vmull_high_s8(a1, x1));
  }
};

struct DotprodProducts {
  __attribute__((target("+dotprod"))) int32x4_t operator()(int8x16_t a0, int8x16_t a1,
                                                           const ActivationBlock& x) const {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), a0, vld1q_s8(x.q)), a1, vld1q_s8(x.q + 16));
  }
};

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

inline int8x16x2_t q8_values(const uint8_t* block) {
  int8x16x2_t v;
  v.val[0] = vld1q_s8(reinterpret_cast<const int8_t*>(block + 2));
  v.val[1] = vld1q_s8(reinterpret_cast<const int8_t*>(block + 18));
  return v;
}

inline int8x16x2_t q4_block_values(const uint8_t* block) { return q4_values(block + 2); }

inline float32x4_t widen_f16(float16x4_t h) { return vcvt_f32_f16(h); }
inline float32x4_t widen_bf16(uint16x4_t h) { return vreinterpretq_f32_u32(vshll_n_u16(h, 16)); }

}  // namespace

void quantize_activations(ActivationBlock* out, const float* x, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, x += kActivationBlock) {
    float32x4_t v[8];
    for (int k = 0; k < 8; ++k) v[k] = vld1q_f32(x + 4 * k);
    float32x4_t amax = vabsq_f32(v[0]);
    for (int k = 1; k < 8; ++k) amax = vmaxq_f32(amax, vabsq_f32(v[k]));
    // The same two roundings as scalar::quantize_activations, hence the same bits.
    const float scale = vmaxvq_f32(amax) / 127.0f;
    const float inverse = scale != 0.0f ? 1.0f / scale : 0.0f;
    out[b].scale = scale;
    int16x8_t q16[4];
    for (int k = 0; k < 4; ++k) {  // vcvtn: round to nearest, ties to even
      const int32x4_t lo = vcvtnq_s32_f32(vmulq_n_f32(v[2 * k], inverse));
      const int32x4_t hi = vcvtnq_s32_f32(vmulq_n_f32(v[2 * k + 1], inverse));
      q16[k] = vcombine_s16(vqmovn_s32(lo), vqmovn_s32(hi));
    }
    vst1q_s8(out[b].q, vcombine_s8(vqmovn_s16(q16[0]), vqmovn_s16(q16[1])));
    vst1q_s8(out[b].q + 16, vcombine_s8(vqmovn_s16(q16[2]), vqmovn_s16(q16[3])));
  }
}

float dot_q8_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  return q_row<kQ8Bytes>(w_row, x, n_blocks, q8_values, PlainProducts{});
}

float dot_q4_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  return q_row<kQ4Bytes>(w_row, x, n_blocks, q4_block_values, PlainProducts{});
}

__attribute__((target("+dotprod"))) float dot_q8_0_dotprod(const uint8_t* w_row, const ActivationBlock* x,
                                                            int64_t n_blocks) {
  return q_row<kQ8Bytes>(w_row, x, n_blocks, q8_values, DotprodProducts{});
}

__attribute__((target("+dotprod"))) float dot_q4_0_dotprod(const uint8_t* w_row, const ActivationBlock* x,
                                                            int64_t n_blocks) {
  return q_row<kQ4Bytes>(w_row, x, n_blocks, q4_block_values, DotprodProducts{});
}

float dot_f16(const uint16_t* w_row, const float* x, int64_t n) {
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  const auto* h = reinterpret_cast<const float16_t*>(w_row);  // read only through vld1_f16
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    acc0 = vfmaq_f32(acc0, widen_f16(vld1_f16(h + i)), vld1q_f32(x + i));
    acc1 = vfmaq_f32(acc1, widen_f16(vld1_f16(h + i + 4)), vld1q_f32(x + i + 4));
  }
  float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
  for (; i < n; ++i) sum += f16_value(w_row + i) * x[i];
  return sum;
}

float dot_bf16(const uint16_t* w_row, const float* x, int64_t n) {
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    acc0 = vfmaq_f32(acc0, widen_bf16(vld1_u16(w_row + i)), vld1q_f32(x + i));
    acc1 = vfmaq_f32(acc1, widen_bf16(vld1_u16(w_row + i + 4)), vld1q_f32(x + i + 4));
  }
  float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
  for (; i < n; ++i) sum += bf16_value(w_row[i]) * x[i];
  return sum;
}

}  // namespace tandem::cpu::neon
