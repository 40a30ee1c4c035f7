// Decoding the storage types a model file may hold (runtime/model_source.h's
// SourceDType) to f32, for the assembler's conversions and the tests'
// references. The k-quants follow ggml's block layouts (QK_K = 256):
//   Q4_K: f16 d, f16 dmin, 12 bytes packing eight 6-bit (scale, min) pairs,
//         128 bytes of nibbles; element = d * scale_j * q - dmin * min_j for
//         the sub-block j of 32 it lies in.
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
// q8_0, q4_0): such a tensor can be used in place.
std::optional<DType> same_layout_dtype(SourceDType dtype);

}  // namespace tandem
