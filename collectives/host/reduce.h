// Elementwise reductions of the host collectives, and the half-precision
// conversions they need. Halves (f16, bf16) are widened to float, reduced and
// rounded back to nearest even, so a reduction of two halves is exactly the
// float result rounded once. Integer sums wrap (two's complement). Max/min
// follow std::max/std::min: a NaN in `dst` is kept, a NaN in `src` is dropped
// (deterministic, like NCCL's fmax-style max, which is all the collectives
// promise).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "collectives/communicator.h"

namespace tandem::collectives {

// dst[i] = op(dst[i], src[i]) for i < count; dst and src must not overlap.
// dtype must be reducible() (a programmer bug otherwise: callers validate).
// Buffers must be aligned to the element size.
void reduce_into(void* dst, const void* src, size_t count, DType dtype, ReduceOp op);
// dst[i] = op(a[i], b[i]); no two of the three may overlap. Saves the copy of
// `a` into `dst` that reduce_into would need.
void reduce_to(void* dst, const void* a, const void* b, size_t count, DType dtype, ReduceOp op);

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// IEEE binary16 -> float: exact (every half is a float).
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return bits_float(float_bits(v) | sign);
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));        // rebias 15 -> 127
}

// float -> IEEE binary16, round to nearest even; overflow gives inf, NaN stays
// a (quiet) NaN.
inline uint16_t float_to_half(float f) {
  const uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u)  // inf or NaN; keep NaN payload's top bits, force quiet
    return static_cast<uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (ax < 0x38800000u) {  // below 2^-14: a half subnormal (or zero)
    if (ax <= 0x33000000u) return static_cast<uint16_t>(sign);  // <= 2^-25 rounds to zero
    const uint32_t e = ax >> 23;                                 // 102..112
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // to units of 2^-24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;  // may carry into the smallest normal: correct
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = (ax - 0x38000000u) >> 13;  // rebias 127 -> 15, drop 13 mantissa bits
  const uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry rolls into the exponent
  return static_cast<uint16_t>(sign | r);
}

inline float bf16_to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

inline uint16_t float_to_bf16(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);  // nearest even
}

}  // namespace tandem::collectives
