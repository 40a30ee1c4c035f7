// Reading one element of a weight tensor of any type, for the kernels where
// weights are not the bulk of the traffic (embedding rows, conversions).
#pragma once

#include "runtime/cuda/cuda_kernels.h"
#include "runtime/quant_blocks.h"

namespace tandem::cuda {

__device__ inline float load_weight(const void* w, WeightType type, int64_t i) {
  const auto* b = static_cast<const uint8_t*>(w);
  switch (type) {
    case WeightType::kF32: return static_cast<const float*>(w)[i];
    case WeightType::kBF16: return quant::f32_from_bf16(static_cast<const uint16_t*>(w)[i]);
    case WeightType::kQ8_0: return quant::q8_0_value(b + (i / 32) * quant::kQ8Bytes, static_cast<int>(i % 32));
    case WeightType::kQ4_0: return quant::q4_0_value(b + (i / 32) * quant::kQ4Bytes, static_cast<int>(i % 32));
  }
  return 0;
}

}  // namespace tandem::cuda
