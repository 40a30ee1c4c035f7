// CPU kernels for weights stored narrower than f32: f16, bf16, ggml's Q8_0
// and Q4_0 blocks and Q4_K super-blocks (layouts in runtime/quant_blocks.h and
// runtime/quantize_q4k.h, rows as a model file holds them). Decode reads every weight once per token, so these kernels are
// what lets a quantized model run 2-4x faster than f32 on the same memory.
//
// Q8_0/Q4_0/Q4_K rows are multiplied against activations quantized to 8 bits
// per block of 32 (quantize_activations), as ggml does: each block's products
// are summed exactly in integers and scaled once. Q4_K uses the same blocks of
// 32 rather than ggml's Q8_K blocks of 256: a Q4_K sub-block is 32 weights, so
// every sub-block meets exactly one activation block, one quantization per
// token serves every Q dtype (a q4_k model with q8_0 fallback tensors
// included), and the activation error stays the same bound as Q8_0/Q4_0's. f16/bf16 rows are widened
// to f32 and multiplied with the f32 activations.
//
// Versions (scalar reference; AVX2; AVX-512 with or without VNNI; NEON with or
// without the dot-product extension) follow active_isa() of kernels.h; within
// an ISA, the best variant the CPU has is detected at run time. Threading is
// the caller's job, as for kernels.h.
#pragma once

#include <cstdint>

#include "runtime/tensor.h"

namespace tandem::cpu {

constexpr int64_t kActivationBlock = 32;

// 32 activations as int8 with one scale: x[i] ~= scale * q[i], where
// scale = max|x| / 127 and q[i] = x[i] / scale rounded to nearest (ties to
// even), so |x[i] - scale * q[i]| <= scale / 2. The scale is f32, not ggml's
// f16: activations are never stored, and an f16 scale would only add error.
// Non-finite activations give unspecified (but defined) values. `sum` is
// sum(q), exact: Q4_K's per-sub-block offset multiplies it, the same for
// every weight row, so the row loops need not sum activations again.
struct ActivationBlock {
  float scale;
  int8_t q[kActivationBlock];
  int32_t sum;
};
static_assert(sizeof(ActivationBlock) == 40, "a block is its scale, 32 bytes and their sum, no padding");

// The weight dtypes matmul_rows_typed computes with: f32, f16, bf16, q8_0, q4_0, q4_k.
bool matmul_dtype_supported(DType dtype);
// Whether weights of `dtype` multiply quantized activations (q8_0, q4_0, q4_k), so
// the caller must run quantize_activations first.
bool needs_quantized_activations(DType dtype);

// x[0, n) -> out[0, n / 32). n must be a multiple of 32.
void quantize_activations(ActivationBlock* out, const float* x, int64_t n);

// One weight row of n elements (n a multiple of 32 for Q8_0/Q4_0, of 256 for
// Q4_K) against one row of activations. A Q row may start at any byte address
// (its blocks are 34, 18 or 144 bytes long); an f16/bf16 row at any even address.
float dot_q8_0(const void* w_row, const ActivationBlock* x, int64_t n);
float dot_q4_0(const void* w_row, const ActivationBlock* x, int64_t n);
float dot_q4_k(const void* w_row, const ActivationBlock* x, int64_t n);
float dot_f16(const void* w_row, const float* x, int64_t n);
float dot_bf16(const void* w_row, const float* x, int64_t n);

// matmul_rows (kernels.h) for weights w of `dtype` ([n_out, n_in] rows):
//   y[t * n_out + r] = dot(x[t], w[r]),  t < n_tokens, r in [row_begin, row_end).
// x: n_tokens rows of n_in floats. xq: the same rows through
// quantize_activations (n_tokens * n_in / 32 blocks) when
// needs_quantized_activations(dtype), else unused (may be null): quantize
// once per token, then let threads split the rows. Rows outside the range are
// not touched. An unsupported dtype, or a Q dtype with n_in not a multiple of
// its block, is a programmer bug (import_weights refuses such weights).
void matmul_rows_typed(float* y, const float* x, const ActivationBlock* xq, const void* w, DType dtype,
                       int64_t n_tokens, int64_t n_in, int64_t n_out, int64_t row_begin, int64_t row_end);

}  // namespace tandem::cpu
