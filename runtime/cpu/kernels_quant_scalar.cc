// Portable reference versions of the quantized kernels: what the SIMD
// versions must agree with, and what non-x86, non-NEON builds run.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "runtime/cpu/kernels_quant_internal.h"
#include "runtime/cpu/kernels_quant_q4k.h"
#include "runtime/quant_blocks.h"

namespace tandem::cpu::scalar {
namespace {

float block_scale(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return quant::f32_from_f16(h);
}

}  // namespace

void quantize_activations(ActivationBlock* out, const float* x, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, x += kActivationBlock) {
    float amax = 0.0f;
    for (int i = 0; i < kActivationBlock; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    // The SIMD versions compute exactly these two roundings, so every
    // version produces the same bits for finite input.
    const float scale = amax / 127.0f;
    const float inverse = scale != 0.0f ? 1.0f / scale : 0.0f;
    out[b].scale = scale;
    out[b].sum = 0;
    for (int i = 0; i < kActivationBlock; ++i) {
      const float r = std::nearbyint(x[i] * inverse);  // ties to even, as cvtps2dq
      // |r| <= 127 for finite x; the clamp only keeps NaN/inf from being UB.
      out[b].q[i] = static_cast<int8_t>(r >= -127.0f && r <= 127.0f ? r : 0.0f);
      out[b].sum += out[b].q[i];
    }
  }
}

float dot_q8_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b, w_row += quant::kQ8Bytes) {
    int32_t isum = 0;
    for (int i = 0; i < kActivationBlock; ++i) isum += static_cast<int8_t>(w_row[2 + i]) * x[b].q[i];
    sum += block_scale(w_row) * x[b].scale * static_cast<float>(isum);
  }
  return sum;
}

float dot_q4_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b, w_row += quant::kQ4Bytes) {
    int32_t isum = 0;
    for (int j = 0; j < kActivationBlock / 2; ++j) {  // byte j: element j low, j + 16 high
      const uint8_t byte = w_row[2 + j];
      isum += ((byte & 0xf) - 8) * x[b].q[j] + ((byte >> 4) - 8) * x[b].q[j + 16];
    }
    sum += block_scale(w_row) * x[b].scale * static_cast<float>(isum);
  }
  return sum;
}

float dot_q4_k(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super) {
  float sum = 0.0f;
  for (int64_t s = 0; s < n_super; ++s, w_row += kQ4KSuperBytes, x += 8) {
    const Q4KFactors f = q4k_factors(w_row + 4, block_scale(w_row), block_scale(w_row + 2), x);
    const uint8_t* nibbles = w_row + kQ4KNibbleOffset;
    for (int j = 0; j < 8; ++j) {  // sub-block j: low nibbles of chunk j / 2 if j is even, else high
      int32_t isum = 0;
      for (int l = 0; l < 32; ++l) {
        const uint8_t byte = nibbles[32 * (j / 2) + l];
        isum += (j % 2 == 0 ? byte & 0x0f : byte >> 4) * x[j].q[l];
      }
      sum += f.factor[j] * static_cast<float>(isum);
    }
    sum -= f.offset;
  }
  return sum;
}

float dot_f16(const uint16_t* w_row, const float* x, int64_t n) {
  float s[4] = {};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int lane = 0; lane < 4; ++lane) s[lane] += quant::f32_from_f16(w_row[i + lane]) * x[i + lane];
  for (; i < n; ++i) s[0] += quant::f32_from_f16(w_row[i]) * x[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

float dot_bf16(const uint16_t* w_row, const float* x, int64_t n) {
  float s[4] = {};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int lane = 0; lane < 4; ++lane) s[lane] += quant::f32_from_bf16(w_row[i + lane]) * x[i + lane];
  for (; i < n; ++i) s[0] += quant::f32_from_bf16(w_row[i]) * x[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

}  // namespace tandem::cpu::scalar
