// Q4_K's per-super-block scalar work, shared by every ISA's kernels
// (layout in runtime/quantize_q4k.h). Everything here has internal linkage,
// so each kernel file compiles its own copy under its own flags (an inline
// function with external linkage, compiled with AVX flags in one file, could
// be the copy the linker keeps for all). Include only from kernel files.
#pragma once

#include <cstdint>

#include "runtime/cpu/kernels_quant.h"

namespace tandem::cpu {
namespace {

constexpr int kQ4KSuperBytes = 144;  // quantize_q4k.h's, not included: its functions are not for SIMD files
constexpr int kQ4KNibbleOffset = 16;

// The factors of one super-block against its 8 activation blocks:
// factor[j] multiplies sub-block j's integer dot product, and `offset` is
// what the sub-blocks' mins take off the row's sum:
//   sum_j factor[j] * sum_i q_ij x_ij - offset,
//   factor[j] = d * scale_j * s_j,  offset = dmin * sum_j min_j * s_j * sum_i x_ij.
struct Q4KFactors {
  float factor[8];
  float offset;
};

inline Q4KFactors q4k_factors(const uint8_t* packed, float d, float dmin, const ActivationBlock* x) {
  Q4KFactors f;
  float mins = 0.0f;
  for (int j = 0; j < 8; ++j) {
    const int scale = j < 4 ? packed[j] & 63 : (packed[j + 4] & 0x0f) | ((packed[j - 4] >> 6) << 4);
    const int min = j < 4 ? packed[j + 4] & 63 : (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
    f.factor[j] = d * static_cast<float>(scale) * x[j].scale;
    mins += static_cast<float>(min) * x[j].scale * static_cast<float>(x[j].sum);
  }
  f.offset = dmin * mins;
  return f;
}

}  // namespace
}  // namespace tandem::cpu
