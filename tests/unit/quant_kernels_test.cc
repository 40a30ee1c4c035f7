// The quantized CPU kernels (runtime/cpu/kernels_quant.h), every variant this
// CPU and build can run, against float64 references computed here from the
// dequantized weights (runtime/quantize.h's dequantize_row, not the kernels'
// code) and the exact f32 activations.
//
// Error bound of a Q8_0/Q4_0 dot product. The kernel multiplies the weights
// (exact after dequantization) by activations rounded to s_b * q per block b,
// s_b = max|x in b| / 127, each off by at most s_b / 2 (plus a few float
// ulps in computing x / s_b: 0.5001 covers them). Integer sums are exact;
// then one float scale product and one float sum per block:
//   |got - ref| <= sum_b 0.5001 * s_b * sum_{i in b} |w_i|  +  1e-5 * sum_i |w_i x_i|.
// The second term is float rounding, as kernels_test.cc's kSumTol. The first
// is tight enough to catch a wrong scale or offset: see BoundRejectsWrongKernels.
// f16/bf16 rows multiply f32 activations: only rounding, 1e-5 * sum |w_i x_i|.
//
// Lengths are multiples of 32 but not of 64, 128 or 256 (odd block counts
// exercise the AVX-512 and NEON pair loops' tails); weights start at odd
// byte addresses, as Q blocks of 34 or 18 bytes put them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/cpu/kernels_quant.h"
#include "runtime/cpu/kernels_quant_internal.h"
#include "runtime/quant_blocks.h"
#include "runtime/quantize.h"

namespace tandem::cpu {
namespace {

constexpr double kRoundingTol = 1e-5;
constexpr double kActivationHalfStep = 0.5001;
constexpr int64_t kLengths[] = {32, 96, 160, 288, 4064};  // 1, 3, 5, 9, 127 blocks
constexpr DType kWeightDtypes[] = {DType::kQ8_0, DType::kQ4_0, DType::kF16, DType::kBF16};

bool is_q(DType dtype) { return dtype == DType::kQ8_0 || dtype == DType::kQ4_0; }

// Rows of weights in `dtype`, starting one byte (Q) or two bytes (f16/bf16)
// past an aligned address, and their exact values.
struct Weights {
  DType dtype;
  int64_t rows, n;
  size_t row_bytes;
  std::vector<uint8_t> storage;
  std::vector<double> values;  // dequantized, [rows, n]
  const uint8_t* row(int64_t r) const { return data() + r * row_bytes; }
  const uint8_t* data() const { return storage.data() + offset(); }
  size_t offset() const { return is_q(dtype) ? 1 : 2; }
};

Weights make_weights(DType dtype, int64_t rows, int64_t n, std::mt19937& rng) {
  Weights w{dtype, rows, n, static_cast<size_t>(n / dtype_block_elems(dtype) * dtype_block_bytes(dtype)), {}, {}};
  w.storage.resize(w.offset() + rows * w.row_bytes);
  w.values.resize(rows * n);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> f(n), back(n);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : f) v = dist(rng);
    quantize_row(dtype, f.data(), n, w.storage.data() + w.offset() + r * w.row_bytes);
    dequantize_row(dtype, w.row(r), n, back.data());
    for (int64_t i = 0; i < n; ++i) w.values[r * n + i] = back[i];
  }
  return w;
}

std::vector<float> random_floats(int64_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

struct Expected {
  double ref, bound;
};

// The float64 dot product of weight row `w` and activations `x`, with the
// bound of the header comment (activation term only for the Q formats).
Expected expected(const double* w, const float* x, int64_t n, DType dtype) {
  double ref = 0, magnitude = 0, quantization = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    double amax = 0, w_abs = 0;
    for (int64_t i = b * 32; i < b * 32 + 32; ++i) {
      ref += w[i] * x[i];
      magnitude += std::fabs(w[i] * x[i]);
      amax = std::max(amax, std::fabs(double{x[i]}));
      w_abs += std::fabs(w[i]);
    }
    quantization += kActivationHalfStep * amax / 127.0 * w_abs;
  }
  for (int64_t i = n / 32 * 32; i < n; ++i) {
    ref += w[i] * x[i];
    magnitude += std::fabs(w[i] * x[i]);
  }
  return {ref, (is_q(dtype) ? quantization : 0.0) + kRoundingTol * (magnitude + quantization)};
}

float variant_dot(const QuantKernels& k, DType dtype, const uint8_t* w_row, const float* x,
                  const ActivationBlock* xq, int64_t n) {
  switch (dtype) {
    case DType::kQ8_0: return k.dot_q8_0(w_row, xq, n / 32);
    case DType::kQ4_0: return k.dot_q4_0(w_row, xq, n / 32);
    case DType::kF16: return k.dot_f16(reinterpret_cast<const uint16_t*>(w_row), x, n);
    default: return k.dot_bf16(reinterpret_cast<const uint16_t*>(w_row), x, n);
  }
}

class QuantKernelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    for (const QuantKernels* k : supported_quant_kernels())
      if (GetParam() == k->name) kernels_ = k;
    if (kernels_ == nullptr) GTEST_SKIP() << GetParam() << " is not supported by this CPU or build";
  }
  std::vector<ActivationBlock> quantize(const std::vector<float>& x) const {
    std::vector<ActivationBlock> xq(x.size() / 32);
    kernels_->quantize_activations(xq.data(), x.data(), static_cast<int64_t>(xq.size()));
    return xq;
  }
  const QuantKernels* kernels_ = nullptr;
  std::mt19937 rng_{20261123};
};

TEST_P(QuantKernelTest, QuantizedActivationsAreWithinHalfAStepAndMatchScalarBitForBit) {
  for (int64_t n : kLengths) {
    std::vector<float> x = random_floats(n, rng_, -3.0f, 2.0f);
    std::fill(x.begin() + 32, x.begin() + std::min<int64_t>(n, 64), 0.0f);  // an all-zero block, if n allows
    const std::vector<ActivationBlock> got = quantize(x);
    std::vector<ActivationBlock> want(n / 32);
    scalar::quantize_activations(want.data(), x.data(), n / 32);
    for (int64_t b = 0; b < n / 32; ++b) {
      double amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(double{x[b * 32 + i]}));
      EXPECT_NEAR(got[b].scale, amax / 127.0, 1e-7 * amax) << "n " << n << " block " << b;
      EXPECT_EQ(got[b].scale, want[b].scale) << "n " << n << " block " << b;
      for (int i = 0; i < 32; ++i) {
        EXPECT_LE(std::fabs(x[b * 32 + i] - double{got[b].scale} * got[b].q[i]), kActivationHalfStep * got[b].scale)
            << "n " << n << " element " << b * 32 + i;
        EXPECT_EQ(got[b].q[i], want[b].q[i]) << "n " << n << " element " << b * 32 + i;
      }
    }
  }
}

TEST_P(QuantKernelTest, DotProductsMatchFloat64WithinTheBound) {
  for (DType dtype : kWeightDtypes) {
    for (int64_t n : kLengths) {
      const Weights w = make_weights(dtype, 3, n, rng_);
      for (int64_t r = 0; r < w.rows; ++r) {
        const std::vector<float> x = random_floats(n, rng_);
        const std::vector<ActivationBlock> xq = quantize(x);
        const Expected e = expected(&w.values[r * n], x.data(), n, dtype);
        EXPECT_NEAR(variant_dot(*kernels_, dtype, w.row(r), x.data(), xq.data(), n), e.ref, e.bound)
            << dtype_name(dtype) << " n " << n << " row " << r;
      }
    }
  }
}

TEST_P(QuantKernelTest, F16AndBf16HandleEveryTailLength) {
  // Not tied to blocks: any length, each tail lane counted once.
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    for (int64_t n : {1, 7, 8, 15, 17, 31, 33, 47, 63, 65, 1025}) {
      const Weights w = make_weights(dtype, 1, n, rng_);
      const std::vector<float> x = random_floats(n, rng_);
      const Expected e = expected(w.values.data(), x.data(), n, dtype);
      EXPECT_NEAR(variant_dot(*kernels_, dtype, w.row(0), x.data(), nullptr, n), e.ref, e.bound)
          << dtype_name(dtype) << " n " << n;
    }
  }
}

TEST_P(QuantKernelTest, OneHotActivationPicksOutExactlyThatWeight) {
  // x = e_k: the result is w_k whatever lane, nibble half or block k is in
  // (1/127 * 127 is 1 within an ulp, hence the relative 1e-6 for Q).
  const int64_t n = 96;
  for (DType dtype : kWeightDtypes) {
    const Weights w = make_weights(dtype, 1, n, rng_);
    for (int64_t k = 0; k < n; ++k) {
      std::vector<float> x(n, 0.0f);
      x[k] = 1.0f;
      const std::vector<ActivationBlock> xq = quantize(x);
      const float got = variant_dot(*kernels_, dtype, w.row(0), x.data(), xq.data(), n);
      ASSERT_NEAR(got, w.values[k], is_q(dtype) ? 1e-6 * std::fabs(w.values[k]) : 0.0)
          << dtype_name(dtype) << " k " << k;
    }
  }
}

TEST_P(QuantKernelTest, BoundRejectsWrongKernels) {
  // What plausible bugs would return, computed in float64 on the same inputs,
  // must fall outside the bound the kernels pass; otherwise the bound could
  // not tell. Activations here have a nonzero mean (U(-0.25, 1)), so a
  // per-block offset error cannot cancel across the block.
  const int64_t n = 160;
  for (int64_t r = 0; r < 8; ++r) {
    const Weights q4 = make_weights(DType::kQ4_0, 1, n, rng_);
    const Weights q8 = make_weights(DType::kQ8_0, 1, n, rng_);
    const std::vector<float> x = random_floats(n, rng_, -0.25f, 1.0f);
    const std::vector<ActivationBlock> xq = quantize(x);
    const Expected e4 = expected(q4.values.data(), x.data(), n, DType::kQ4_0);
    const Expected e8 = expected(q8.values.data(), x.data(), n, DType::kQ8_0);
    EXPECT_NEAR(variant_dot(*kernels_, DType::kQ4_0, q4.row(0), x.data(), xq.data(), n), e4.ref, e4.bound);
    EXPECT_NEAR(variant_dot(*kernels_, DType::kQ8_0, q8.row(0), x.data(), xq.data(), n), e8.ref, e8.bound);
    // (q - 7) * d and (q - 9) * d instead of (q - 8) * d; Q8_0 given Q4_0's
    // -8 offset (a copy-paste slip): each shifts every weight of a block by
    // a multiple of its scale.
    double nibble_minus_7 = 0, nibble_minus_9 = 0, q8_with_q4_offset = 0;
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h4, h8;
      std::memcpy(&h4, q4.row(0) + (i / 32) * quant::kQ4Bytes, 2);
      std::memcpy(&h8, q8.row(0) + (i / 32) * quant::kQ8Bytes, 2);
      nibble_minus_7 += (q4.values[i] + quant::f32_from_f16(h4)) * x[i];
      nibble_minus_9 += (q4.values[i] - quant::f32_from_f16(h4)) * x[i];
      q8_with_q4_offset += (q8.values[i] - 8.0 * quant::f32_from_f16(h8)) * x[i];
    }
    EXPECT_GT(std::fabs(nibble_minus_7 - e4.ref), e4.bound) << "row " << r;
    EXPECT_GT(std::fabs(nibble_minus_9 - e4.ref), e4.bound) << "row " << r;
    EXPECT_GT(std::fabs(q8_with_q4_offset - e8.ref), e8.bound) << "row " << r;
  }
}

TEST_P(QuantKernelTest, Q8_0MinusOneTwentyEightWeightsMultiplyCorrectly) {
  // ggml never writes -128, but a file may: the sign trick's |w| is then 128
  // as an unsigned byte, still right. Activations are never -128.
  std::vector<uint8_t> row(1 + 3 * quant::kQ8Bytes, 0);
  const uint16_t one = quant::f16_from_f32(1.0f);
  std::vector<double> w(96);
  for (int b = 0; b < 3; ++b) {
    std::memcpy(&row[1 + b * quant::kQ8Bytes], &one, 2);
    for (int i = 0; i < 32; ++i) {
      const int8_t q = (i % 3 == 0) ? -128 : static_cast<int8_t>(i * 7 - 100);
      row[1 + b * quant::kQ8Bytes + 2 + i] = static_cast<uint8_t>(q);
      w[b * 32 + i] = q;
    }
  }
  const std::vector<float> x = random_floats(96, rng_);
  const std::vector<ActivationBlock> xq = quantize(x);
  const Expected e = expected(w.data(), x.data(), 96, DType::kQ8_0);
  EXPECT_NEAR(kernels_->dot_q8_0(row.data() + 1, xq.data(), 3), e.ref, e.bound);
}

INSTANTIATE_TEST_SUITE_P(AllVariants, QuantKernelTest,
                         ::testing::Values("scalar", "avx2", "avx512", "avx512-vnni", "neon", "neon-dotprod"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string name = param_info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// The dispatched matmul, under every ISA this CPU supports: rows in range
// match the reference, rows outside stay untouched, several tokens share
// one quantization each.
class QuantMatmulTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) GTEST_SKIP() << isa_name(GetParam()) << " is not supported here";
    saved_ = active_isa();
    ASSERT_TRUE(set_active_isa(GetParam()));
  }
  void TearDown() override { set_active_isa(saved_); }
  Isa saved_ = Isa::kScalar;
  std::mt19937 rng_{7};
};

TEST_P(QuantMatmulTest, RowsInRangeMatchFloat64AndOthersAreUntouched) {
  for (DType dtype : kWeightDtypes) {
    for (int64_t n_tokens : {1, 2, 5}) {
      for (int64_t n_out : {1, 7, 17}) {
        const int64_t n_in = 96, begin = n_out > 2 ? 1 : 0, end = n_out > 2 ? n_out - 1 : n_out;
        const Weights w = make_weights(dtype, n_out, n_in, rng_);
        const std::vector<float> x = random_floats(n_tokens * n_in, rng_);
        std::vector<ActivationBlock> xq(n_tokens * n_in / 32);
        for (int64_t t = 0; t < n_tokens; ++t) quantize_activations(xq.data() + t * 3, x.data() + t * n_in, n_in);
        std::vector<float> y(n_tokens * n_out, std::numeric_limits<float>::quiet_NaN());
        matmul_rows_typed(y.data(), x.data(), xq.data(), w.data(), dtype, n_tokens, n_in, n_out, begin, end);
        for (int64_t t = 0; t < n_tokens; ++t) {
          for (int64_t r = 0; r < n_out; ++r) {
            const float got = y[t * n_out + r];
            if (r < begin || r >= end) {
              EXPECT_TRUE(std::isnan(got)) << "row " << r << " outside the range was written";
              continue;
            }
            const Expected e = expected(&w.values[r * n_in], &x[t * n_in], n_in, dtype);
            EXPECT_NEAR(got, e.ref, e.bound) << dtype_name(dtype) << " token " << t << " row " << r;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, QuantMatmulTest,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon),
                         [](const ::testing::TestParamInfo<Isa>& param_info) {
                           return std::string(isa_name(param_info.param));
                         });

TEST(QuantDispatchTest, EachIsaUsesItsBestVariant) {
  EXPECT_STREQ(quant_kernels_for(Isa::kScalar).name, "scalar");
  const std::vector<const QuantKernels*> all = supported_quant_kernels();
  ASSERT_FALSE(all.empty());
  EXPECT_STREQ(all.front()->name, "scalar");
  // The active ISA's variant is the last (best) supported one of its family.
  const std::string best = quant_kernels_for(best_isa()).name;
  EXPECT_EQ(best, all.back()->name);
  EXPECT_TRUE(matmul_dtype_supported(DType::kQ4_0));
  EXPECT_FALSE(matmul_dtype_supported(DType::kI32));
}

TEST(QuantDispatchDeathTest, QFormatRowsMustBeWholeBlocks) {
  std::vector<uint8_t> w(64);
  float x[40] = {}, y[1] = {};
  EXPECT_DEATH(matmul_rows_typed(y, x, nullptr, w.data(), DType::kQ8_0, 1, 40, 1, 0, 1), "internal check failed");
}

}  // namespace
}  // namespace tandem::cpu
