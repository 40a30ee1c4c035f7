// Host conversions between f32 and the weight storage dtypes (f16, bf16, Q8_0,
// Q4_0, Q4_K; runtime/quant_blocks.h and runtime/quantize_q4k.h hold the formats). Used to run a checkpoint
// in a narrower dtype on a backend that computes with it (cpu, cuda), and by tests
// as the reference side.
#pragma once

#include <cstdint>

#include "runtime/llama_weights.h"
#include "runtime/tensor.h"

namespace tandem {

// Whether `dtype` can store a row of `row_length` elements (a multiple of
// dtype_block_elems: 32 for Q8_0/Q4_0, 256 for Q4_K).
bool storable_as(DType dtype, int64_t row_length);
// n elements of f32 -> dtype (f32, f16, bf16, q8_0, q4_0, q4_k); n a multiple of the block.
void quantize_row(DType dtype, const float* x, int64_t n, void* out);
// dtype (f32, f16, bf16, q8_0, q4_0, q4_k) -> n elements of f32; n a multiple of the block.
void dequantize_row(DType dtype, const void* in, int64_t n, float* out);

// A host copy of `weights` whose matrices (embedding/classifier included) are
// stored in `dtype`; norms stay f32. InvalidArgument when a matrix's rows do
// not fit the dtype's blocks (stories260K's hidden 172 cannot be Q8_0/Q4_0).
Result<LlamaWeights> convert_weights(const LlamaWeights& weights, DType dtype);

}  // namespace tandem
