// Storage formats of the weight dtypes, shared by the host (runtime/quantize.cc,
// the tests' references) and the CUDA kernels, so that a weight quantized on
// either side has the same bits: bf16 (round to nearest even), f16, and ggml's
// Q8_0 (f16 scale + 32 int8) and Q4_0 (f16 scale + 16 bytes of 32 nibbles,
// value = (q - 8) * d; byte j holds element j low and element j + 16 high).
// Also the seeded hash behind synthetic weights. C++17 and CUDA-clean.
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define TANDEM_HD __host__ __device__ inline
#else
#define TANDEM_HD inline
#endif

namespace tandem::quant {

constexpr int kBlock = 32;
constexpr int kQ8Bytes = 2 + 32;
constexpr int kQ4Bytes = 2 + 16;

TANDEM_HD uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
TANDEM_HD float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// Products and sums rounded once: device code would otherwise fuse a * b + c
// into an FMA and round differently from the host.
TANDEM_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
TANDEM_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

TANDEM_HD uint16_t bf16_from_f32(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
TANDEM_HD float f32_from_bf16(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

// IEEE half, round to nearest even, subnormals included.
TANDEM_HD uint16_t f16_from_f32(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0));
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504
  if (a < 0x38800000u) {  // below the smallest normal half: a subnormal or zero
    if (a < 0x33000000u) return static_cast<uint16_t>(sign);  // under half the smallest subnormal
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const int shift = 126 - static_cast<int>(a >> 23);  // 14..24: value = mant >> shift halves
    const uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    uint32_t r = q;
    if (rem > half || (rem == half && (q & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = a - 0x38000000u;  // rebias exponent 127 -> 15
  r = (r + 0xfffu + ((r >> 13) & 1u)) >> 13;
  return static_cast<uint16_t>(sign | r);
}
TANDEM_HD float f32_from_f16(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    const float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
    return bits_float(float_bits(v) | sign);
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

TANDEM_HD float absf(float x) { return x < 0 ? -x : x; }

// ggml's quantize_row_q8_0_ref for one block.
TANDEM_HD void quantize_q8_0(const float* x, uint8_t* out) {
  float amax = 0;
  for (int i = 0; i < kBlock; ++i) amax = absf(x[i]) > amax ? absf(x[i]) : amax;
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  const uint16_t dh = f16_from_f32(d);
  memcpy(out, &dh, 2);
  for (int i = 0; i < kBlock; ++i) {
    out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(roundf(mul_rn(x[i], id))));
  }
}

// ggml's quantize_row_q4_0_ref for one block: the scale keeps the sign of the
// element of largest magnitude, which then maps to q = 0.
TANDEM_HD void quantize_q4_0(const float* x, uint8_t* out) {
  float amax = 0, max = 0;
  for (int i = 0; i < kBlock; ++i) {
    if (amax < absf(x[i])) {
      amax = absf(x[i]);
      max = x[i];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  const uint16_t dh = f16_from_f32(d);
  memcpy(out, &dh, 2);
  for (int j = 0; j < kBlock / 2; ++j) {
    int q0 = static_cast<int8_t>(add_rn(mul_rn(x[j], id), 8.5f));
    int q1 = static_cast<int8_t>(add_rn(mul_rn(x[j + 16], id), 8.5f));
    q0 = q0 < 15 ? q0 : 15;
    q1 = q1 < 15 ? q1 : 15;
    out[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

TANDEM_HD float q8_0_value(const uint8_t* block, int i) {
  uint16_t dh;
  memcpy(&dh, block, 2);
  return static_cast<float>(static_cast<int8_t>(block[2 + i])) * f32_from_f16(dh);
}
TANDEM_HD float q4_0_value(const uint8_t* block, int i) {
  uint16_t dh;
  memcpy(&dh, block, 2);
  const uint8_t byte = block[2 + (i & 15)];
  const int q = i < 16 ? (byte & 0xf) : (byte >> 4);
  return static_cast<float>(q - 8) * f32_from_f16(dh);
}

// Element i of the synthetic stream `seed`: splitmix64's (i+1)-th output,
// mapped to [-1, 1) exactly as runtime/synthetic.cc's host generator does.
TANDEM_HD float synthetic_uniform(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return add_rn(static_cast<float>(z >> 40) * (2.0f / 16777216.0f), -1.0f);
}

}  // namespace tandem::quant
