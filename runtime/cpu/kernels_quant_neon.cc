// NEON versions of the quantized kernels for AArch64, without the dot-product
// extension (kernels_quant_neon_dotprod.cc has those): int8 pairs multiply
// into int16 (vmull) and pair up into int32 (vpadal). The rules of
// kernels_neon.cc hold: no inline function from a shared header, every load
// unaligned (Q blocks are 34 or 18 bytes long).
#include "runtime/cpu/kernels_quant_neon_loops.h"

namespace tandem::cpu::neon {
namespace {

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
    int32_t sum = 0;  // as scalar::quantize_activations: exact, so every version agrees
    for (int i = 0; i < kActivationBlock; ++i) sum += out[b].q[i];
    out[b].sum = sum;
  }
}

float dot_q8_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  return q_row<kQ8Bytes>(w_row, x, n_blocks, q8_values, PlainProducts{});
}

float dot_q4_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  return q_row<kQ4Bytes>(w_row, x, n_blocks, q4_block_values, PlainProducts{});
}

float dot_q4_k(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super) {
  return q4_k_row(w_row, x, n_super, PlainProducts{});
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
