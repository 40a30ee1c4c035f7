// Decoding the storage types a model file may hold (runtime/model_source.h's
// SourceDType) to f32, for the assembler's conversions and the tests'
// references. The k-quants follow ggml's block layouts (QK_K = 256):
//   Q4_K: runtime/quantize_q4k.h (also a runtime dtype, decoded there).
//   Q6_K: 128 bytes of low nibbles, 64 bytes of high bit pairs, 16 int8
//         scales (one per 16 elements), f16 d; element = d * scale * (q - 32).
// FP8 e4m3 ("fn": no infinities, S.1111.111 is NaN) decodes exactly; a block
// scale, when the checkpoint has one, is the caller's to apply.
#pragma once

#include <cstdint>
#include <optional>

#include "runtime/model_source.h"
#include "runtime/tensor.h"

namespace tandem {

// Elements [first, first + n) of a row stored as `dtype` starting at `row`.
// `first` and `n` must be multiples of the dtype's block (a programmer bug
// otherwise: the assembler checks slices against blocks before decoding).
void decode_source_row(SourceDType dtype, const uint8_t* row, int64_t first, int64_t n, float* out);

float f32_from_e4m3(uint8_t v);

// The runtime dtype with the same bytes, if there is one (f32, f16, bf16,
// q8_0, q4_0, q4_k): such a tensor can be used in place.
std::optional<DType> same_layout_dtype(SourceDType dtype);

}  // namespace tandem
