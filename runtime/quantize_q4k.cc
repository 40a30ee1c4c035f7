#include "runtime/quantize_q4k.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/quant_blocks.h"

namespace tandem::quant {
namespace {

constexpr int kSub = 32;
constexpr int kLevels = 15;  // q in 0..15
// Grids tried per sub-block: 15 + k * 0.1 steps across [lo, hi], k in
// [-kSteps, kSteps]. A slightly coarser or finer grid often rounds the
// sub-block's values closer; 21 grids cost ~21 * 10 flops per weight, paid
// once at quantization time (~1 minute of one core for 1B weights).
constexpr int kSteps = 10;
constexpr float kStepDelta = 0.1f;

struct ScaleMin {
  float scale = 0, min = 0;  // element = scale * q - min, min >= 0
};

// Rounded to nearest even; NaN and far-out values (non-finite input) are
// clamped before the cast, which would be undefined for them.
int nearest(float v) {
  if (!(v > -1e6f && v < 1e6f)) return v > 0 ? 1000000 : 0;
  return static_cast<int>(std::nearbyint(v));
}
int clamp_level(int q, int hi) { return std::clamp(q, 0, hi); }

float squared_error(const float* x, ScaleMin p) {
  float err = 0;
  for (int i = 0; i < kSub; ++i) {
    const int q = p.scale > 0 ? clamp_level(nearest((x[i] + p.min) / p.scale), kLevels) : 0;
    const float e = p.scale * static_cast<float>(q) - p.min - x[i];
    err += e * e;
  }
  return err;
}

// For levels q fixed, the (scale, -min) minimising sum (scale * q - min - x)^2
// with min >= 0: ordinary least squares for a line, or through the origin
// when the line's intercept comes out positive.
ScaleMin fit_levels(const float* x, const int* q) {
  double sq = 0, sqq = 0, sx = 0, sqx = 0;
  for (int i = 0; i < kSub; ++i) {
    sq += q[i];
    sqq += static_cast<double>(q[i]) * q[i];
    sx += x[i];
    sqx += static_cast<double>(q[i]) * x[i];
  }
  const double det = kSub * sqq - sq * sq;
  if (det <= 0) return {};
  double scale = (kSub * sqx - sq * sx) / det;
  double offset = (sqq * sx - sq * sqx) / det;
  if (offset > 0) {
    offset = 0;
    scale = sqq > 0 ? sqx / sqq : 0;
  }
  if (scale <= 0) return {};
  return {static_cast<float>(scale), static_cast<float>(-offset)};
}

ScaleMin search_scale_min(const float* x) {
  float lo = 0, hi = x[0];
  for (int i = 0; i < kSub; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  // All values equal and >= 0 is covered by lo = 0; equal and < 0 by min = -lo.
  if (!(hi > lo)) return {0.0f, -lo};
  ScaleMin best{(hi - lo) / kLevels, -lo};
  float best_err = squared_error(x, best);
  int q[kSub];
  for (int k = -kSteps; k <= kSteps; ++k) {
    const float inverse = (kLevels + kStepDelta * static_cast<float>(k)) / (hi - lo);
    for (int i = 0; i < kSub; ++i) q[i] = clamp_level(nearest(inverse * (x[i] - lo)), kLevels);
    const ScaleMin candidate = fit_levels(x, q);
    if (candidate.scale <= 0) continue;
    // The error with the grid's own levels: at least what re-rounding to the
    // fitted pair would give, and half the cost (no division, no rounding).
    float err = 0;
    for (int i = 0; i < kSub; ++i) {
      const float e = candidate.scale * static_cast<float>(q[i]) - candidate.min - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = err;
      best = candidate;
    }
  }
  return best;
}

float f16_value(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f32_from_f16(h);
}

// Stores the step largest / 63 as f16 at out (so the largest value maps to
// 63) and returns that step as the decoder will see it.
float store_super_scale(float largest, uint8_t* out) {
  const uint16_t h = f16_from_f32(largest / 63.0f);
  std::memcpy(out, &h, 2);
  return f32_from_f16(h);
}

void pack_scale_min(uint8_t* packed, int j, int scale, int min) {
  if (j < 4) {
    packed[j] = static_cast<uint8_t>((packed[j] & 0xc0) | scale);
    packed[j + 4] = static_cast<uint8_t>((packed[j + 4] & 0xc0) | min);
  } else {
    packed[j + 4] = static_cast<uint8_t>((scale & 0x0f) | ((min & 0x0f) << 4));
    packed[j - 4] = static_cast<uint8_t>(packed[j - 4] | ((scale >> 4) << 6));
    packed[j] = static_cast<uint8_t>(packed[j] | ((min >> 4) << 6));
  }
}

}  // namespace

void q4_k_scale_min(const uint8_t* packed, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = packed[j] & 63;
    *min = packed[j + 4] & 63;
  } else {
    *scale = (packed[j + 4] & 0x0f) | ((packed[j - 4] >> 6) << 4);
    *min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
  }
}

void quantize_q4_k(const float* x, uint8_t* out) {
  ScaleMin pairs[kQ4KSubBlocks];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQ4KSubBlocks; ++j) {
    pairs[j] = search_scale_min(x + kSub * j);
    max_scale = std::max(max_scale, pairs[j].scale);
    max_min = std::max(max_min, pairs[j].min);
  }
  std::memset(out, 0, kQ4KBytes);
  const float d = store_super_scale(max_scale, out);
  const float dmin = store_super_scale(max_min, out + 2);
  uint8_t* packed = out + 4;
  uint8_t* nibbles = out + 16;
  for (int j = 0; j < kQ4KSubBlocks; ++j) {
    const int scale = d > 0 ? std::clamp(nearest(pairs[j].scale / d), 0, 63) : 0;
    const int min = dmin > 0 ? std::clamp(nearest(pairs[j].min / dmin), 0, 63) : 0;
    pack_scale_min(packed, j, scale, min);
    // The levels last, nearest for the pair as the decoder will see it.
    const float step = d * static_cast<float>(scale), offset = dmin * static_cast<float>(min);
    for (int l = 0; l < kSub; ++l) {
      const int q = step > 0 ? clamp_level(nearest((x[kSub * j + l] + offset) / step), kLevels) : 0;
      uint8_t& byte = nibbles[32 * (j / 2) + l];
      byte = static_cast<uint8_t>(j % 2 == 0 ? (byte & 0xf0) | q : (byte & 0x0f) | (q << 4));
    }
  }
}

void dequantize_q4_k(const uint8_t* block, float* out) {
  const float d = f16_value(block), dmin = f16_value(block + 2);
  const uint8_t* nibbles = block + 16;
  for (int j = 0; j < kQ4KSubBlocks; ++j) {
    int scale, min;
    q4_k_scale_min(block + 4, j, &scale, &min);
    const float step = d * static_cast<float>(scale), offset = dmin * static_cast<float>(min);
    for (int l = 0; l < kSub; ++l) {
      const uint8_t byte = nibbles[32 * (j / 2) + l];
      const int q = j % 2 == 0 ? byte & 0x0f : byte >> 4;
      out[kSub * j + l] = step * static_cast<float>(q) - offset;
    }
  }
}

}  // namespace tandem::quant
