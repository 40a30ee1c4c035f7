// GGUF's Q4_K block (ggml's block_q4_K; QK_K = 256), as a runtime weight
// dtype (DType::kQ4K) and as a file format:
//   bytes 0-1    f16 d     super-scale of the sub-block scales
//   bytes 2-3    f16 dmin  super-scale of the sub-block mins
//   bytes 4-15   eight 6-bit (scale, min) pairs, one per sub-block of 32
//   bytes 16-143 nibbles: chunk c (0..3) is 32 bytes, element 64c + l in the
//                low nibble of byte 32c + l, element 64c + 32 + l in its high
//   element = d * scale_j * q - dmin * min_j  (q in 0..15, j = element / 32)
// 144 bytes per 256 weights: 4.5 bits per weight, as Q4_0, but each 32
// weights get their own offset, so a skewed sub-block keeps all 16 levels.
#pragma once

#include <cstdint>

namespace tandem::quant {

constexpr int kQ4KBlock = 256;
constexpr int kQ4KBytes = 144;
constexpr int kQ4KSubBlocks = 8;

// Sub-block j's 6-bit scale and min out of the 12 packed bytes (block + 4):
// pairs 0-3 sit in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins);
// pairs 4-7 keep their low 4 bits in bytes 8-11 (scale low nibble, min high
// nibble) and their top 2 bits in the spare top bits of bytes 0-3 / 4-7.
void q4_k_scale_min(const uint8_t* packed, int j, int* scale, int* min);

// One super-block of 256 floats -> 144 bytes. Each sub-block's (scale, min)
// is the least-squares fit over a small search of quantization grids (the
// plain min/max grid among them); the eight pairs are then rounded to 6 bits
// against d = max scale / 63 and dmin = max min / 63 (f16), and the nibbles
// chosen last, nearest for the rounded pairs. Non-finite input gives
// unspecified (but defined) bytes.
void quantize_q4_k(const float* x, uint8_t* out);

// 144 bytes -> 256 floats.
void dequantize_q4_k(const uint8_t* block, float* out);

}  // namespace tandem::quant
