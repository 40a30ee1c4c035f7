// How the CUDA backend stores Q8_0/Q4_0 weights in device memory: each row
// of nb blocks keeps ggml's bytes per row (34 or 18 per block) but splits
// them, the blocks' quants first (32 or 16 bytes each, back to back) and then
// their f16 scales. In ggml's order a block is only 2-byte aligned, so a
// kernel would read its quants as 16-bit words; split, a Q4_0 block is one
// 16-byte load and a Q8_0 block two (where the row starts 16-byte aligned:
// nb a multiple of 8). Rows keep their size and place, so row slices, byte
// counts and the planner's figures are unchanged.
//
// import_weights and fill_synthetic produce this layout; copy_to_host of a
// Q8_0/Q4_0 tensor gives ggml's back. C++17, host and device.
#pragma once

#include <cstdint>
#include <cstring>

#include "runtime/cuda/cuda_kernels.h"
#include "runtime/quant_blocks.h"

#if defined(__CUDACC__)
#define TANDEM_QL_HD __host__ __device__ inline
#else
#define TANDEM_QL_HD inline
#endif

namespace tandem::cuda {

// Bytes of one block's quants (the scale is 2 more).
TANDEM_QL_HD constexpr int quant_bytes(WeightType t) { return t == WeightType::kQ8_0 ? 32 : 16; }
TANDEM_QL_HD constexpr int block_bytes(WeightType t) { return quant_bytes(t) + 2; }
TANDEM_QL_HD constexpr bool is_quantized(WeightType t) { return t == WeightType::kQ8_0 || t == WeightType::kQ4_0; }

// Within one row of `nb` blocks starting at `row`.
TANDEM_QL_HD const uint8_t* block_quants(const uint8_t* row, WeightType t, int64_t b) {
  return row + b * quant_bytes(t);
}
TANDEM_QL_HD const uint8_t* block_scale(const uint8_t* row, WeightType t, int64_t nb, int64_t b) {
  return row + nb * quant_bytes(t) + 2 * b;
}

// One ggml row (nb blocks) -> the split row, and back. `out` must not alias `in`.
TANDEM_QL_HD void split_row(const uint8_t* in, uint8_t* out, WeightType t, int64_t nb) {
  const int qb = quant_bytes(t);
  for (int64_t b = 0; b < nb; ++b) {
    memcpy(out + nb * qb + 2 * b, in + b * (qb + 2), 2);
    memcpy(out + b * qb, in + b * (qb + 2) + 2, qb);
  }
}
TANDEM_QL_HD void join_row(const uint8_t* in, uint8_t* out, WeightType t, int64_t nb) {
  const int qb = quant_bytes(t);
  for (int64_t b = 0; b < nb; ++b) {
    memcpy(out + b * (qb + 2), in + nb * qb + 2 * b, 2);
    memcpy(out + b * (qb + 2) + 2, in + b * qb, qb);
  }
}

// Element i (0..32*nb) of a split row, dequantized.
TANDEM_QL_HD float split_row_value(const uint8_t* row, WeightType t, int64_t nb, int64_t i) {
  const int64_t b = i / quant::kBlock;
  const int j = static_cast<int>(i % quant::kBlock);
  uint16_t dh;
  memcpy(&dh, block_scale(row, t, nb, b), 2);
  const float d = quant::f32_from_f16(dh);
  const uint8_t* q = block_quants(row, t, b);
  if (t == WeightType::kQ8_0) return static_cast<float>(static_cast<int8_t>(q[j])) * d;
  const uint8_t byte = q[j & 15];
  return static_cast<float>((j < 16 ? (byte & 0xf) : (byte >> 4)) - 8) * d;
}

}  // namespace tandem::cuda
