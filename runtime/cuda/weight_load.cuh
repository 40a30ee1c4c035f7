// Reading one element of a weight tensor of any type, for the kernels where
// weights are not the bulk of the traffic (embedding rows, conversions).
// Q8_0/Q4_0 rows are in the split layout (q_layout.h).
#pragma once

#include "runtime/cuda/cuda_kernels.h"
#include "runtime/cuda/q_layout.h"
#include "runtime/quant_blocks.h"

namespace tandem::cuda {

// Element i of a tensor with rows of `row_len` elements.
__device__ inline float load_weight(const void* w, WeightType type, int64_t row_len, int64_t i) {
  switch (type) {
    case WeightType::kF32: return static_cast<const float*>(w)[i];
    case WeightType::kBF16: return quant::f32_from_bf16(static_cast<const uint16_t*>(w)[i]);
    case WeightType::kQ8_0:
    case WeightType::kQ4_0: {
      const int64_t nb = row_len / quant::kBlock;
      const auto* row = static_cast<const uint8_t*>(w) + (i / row_len) * nb * block_bytes(type);
      return split_row_value(row, type, nb, i % row_len);
    }
  }
  return 0;
}

}  // namespace tandem::cuda
