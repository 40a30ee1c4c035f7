// Q4_K as a weight dtype: the encoder and decoder (runtime/quantize_q4k.h)
// against float64, and every CPU kernel variant's dot product
// (runtime/cpu/kernels_quant.h) against a float64 reference.
//
// Encoder bounds, checked per super-block against x in float64:
//  (1) the summed squared error is at most 1.10 x that of the plain min/max
//      grid computed here in float64 with *unrounded* scales and mins
//      (step_j = (max_j - min(0, min_j)) / 15, levels nearest). The encoder
//      searches grids and then rounds its scales/mins to 6 bits and d/dmin
//      to f16; the search typically wins back more than the rounding costs
//      (measured 0.75-0.95x), and 1.10x leaves room for one unlucky block;
//  (2) no element is off by more than 1.5 steps of its sub-block's plain grid
//      plus 8 d + dmin: rounding a scale to 6 bits moves the top level by up
//      to 15 d / 2 and a min by dmin / 2 (d, dmin: the block's f16 super-
//      scales), which matters where a super-block holds sub-blocks of very
//      different ranges; a wrong nibble, sub-block or scale is off by more.
// The decoder is checked against the format's formula evaluated here from
// the bytes (element = d * scale_j * q - dmin * min_j), with the scale/min
// bits unpacked by this file's own code.
//
// Kernel bound, as quant_kernels_test.cc's: the weights are exact after
// decoding; activations are rounded to s_b * q with error <= s_b / 2 per
// block b; integer sums are exact; then float scale products and sums:
//   |got - ref| <= sum_b 0.5001 s_b sum_{i in b} |w_i|
//                  + 1e-5 (sum_i |w_i x_i| + sum_i min_i |x_i| + the first term),
// where min_i = dmin * min_j of element i's sub-block: the kernels subtract
// the mins' sum separately, so rounding scales with it, not only with |w x|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "runtime/cpu/kernels_quant.h"
#include "runtime/cpu/kernels_quant_internal.h"
#include "runtime/quant_blocks.h"
#include "runtime/quantize.h"
#include "runtime/quantize_q4k.h"

namespace tandem {
namespace {

constexpr int kSuper = 256;
constexpr int kBytes = 144;

double f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return quant::f32_from_f16(h);
}

// The format's 6-bit pairs, unpacked from the description in quantize_q4k.h.
void pair(const uint8_t* block, int j, int* scale, int* min) {
  const uint8_t* p = block + 4;
  if (j < 4) {
    *scale = p[j] % 64;
    *min = p[4 + j] % 64;
  } else {
    *scale = p[8 + j - 4] % 16 + (p[j - 4] / 64) * 16;
    *min = p[8 + j - 4] / 16 + (p[j] / 64) * 16;
  }
}

// Element i of a super-block, in float64 from its bytes.
double element(const uint8_t* block, int i) {
  int scale, min;
  pair(block, i / 32, &scale, &min);
  const int chunk = i / 64, l = i % 32;
  const uint8_t byte = block[16 + 32 * chunk + l];
  const int q = (i % 64) < 32 ? byte % 16 : byte / 16;
  return f16_at(block) * scale * q - f16_at(block + 2) * min;
}

double offset_of(const uint8_t* block, int i) {
  int scale, min;
  pair(block, i / 32, &scale, &min);
  return f16_at(block + 2) * min;
}

enum class Shape { kUniform, kGaussian, kSkewed, kOutliers, kMixedRanges, kRamps };

std::vector<float> make_row(Shape shape, int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) {
    switch (shape) {
      case Shape::kUniform: x[i] = uniform(rng); break;
      case Shape::kGaussian: x[i] = 0.02f * normal(rng); break;
      case Shape::kSkewed: x[i] = 0.5f + 0.25f * uniform(rng); break;  // all positive: mins of 0
      case Shape::kOutliers: x[i] = (i % 97 == 5 ? 8.0f : 1.0f) * normal(rng); break;
      case Shape::kMixedRanges: x[i] = std::ldexp(normal(rng), static_cast<int>((i / 32) % 8) - 4); break;
      case Shape::kRamps: {  // no randomness: rising in even sub-blocks, falling below 0 in odd ones, x2 from 4 on
        const int j = static_cast<int>(i / 32 % 8);
        x[i] = (j % 2 == 0 ? 1.0f : -1.0f) * static_cast<float>(i % 32) / 31.0f * (j >= 4 ? 2.0f : 1.0f);
        break;
      }
    }
  }
  return x;
}

// The plain min/max grid's squared error and step for sub-block j, float64.
struct PlainGrid {
  double squared_error = 0, step = 0;
};
PlainGrid plain_grid(const float* x) {
  double lo = 0, hi = x[0];
  for (int i = 0; i < 32; ++i) {
    lo = std::min(lo, double{x[i]});
    hi = std::max(hi, double{x[i]});
  }
  PlainGrid g;
  g.step = (hi - lo) / 15;
  for (int i = 0; i < 32; ++i) {
    const double q = g.step > 0 ? std::clamp(std::nearbyint((x[i] - lo) / g.step), 0.0, 15.0) : 0;
    const double e = lo + g.step * q - x[i];
    g.squared_error += e * e;
  }
  return g;
}

TEST(Q4KCodec, DecoderIsTheFormatsFormula) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int trial = 0; trial < 20; ++trial) {
    uint8_t block[kBytes];
    for (uint8_t& b : block) b = static_cast<uint8_t>(byte(rng));
    // Finite, moderate super-scales: an arbitrary byte pair may be inf/NaN.
    const uint16_t d = quant::f16_from_f32(0.01f * (trial + 1)), dmin = quant::f16_from_f32(0.003f * trial);
    std::memcpy(block, &d, 2);
    std::memcpy(block + 2, &dmin, 2);
    float out[kSuper];
    dequantize_row(DType::kQ4K, block, kSuper, out);
    for (int i = 0; i < kSuper; ++i)
      ASSERT_NEAR(out[i], element(block, i), 1e-6 * (std::fabs(element(block, i)) + offset_of(block, i)))
          << "trial " << trial << " element " << i;
  }
}

TEST(Q4KCodec, EncoderErrorIsWithinTheStatedBounds) {
  std::mt19937 rng(2026);
  const int64_t n = 4 * kSuper;
  for (Shape shape : {Shape::kUniform, Shape::kGaussian, Shape::kSkewed, Shape::kOutliers, Shape::kMixedRanges}) {
    double total_ours = 0, total_plain = 0;
    for (int row = 0; row < 8; ++row) {
      const std::vector<float> x = make_row(shape, n, rng);
      std::vector<uint8_t> bytes(n / kSuper * kBytes);
      quantize_row(DType::kQ4K, x.data(), n, bytes.data());
      for (int64_t s = 0; s < n / kSuper; ++s) {
        const uint8_t* block = bytes.data() + s * kBytes;
        double ours = 0, plain = 0;
        for (int j = 0; j < 8; ++j) {
          const float* xs = x.data() + s * kSuper + 32 * j;
          const PlainGrid g = plain_grid(xs);
          plain += g.squared_error;
          for (int l = 0; l < 32; ++l) {
            const double e = element(block, 32 * j + l) - xs[l];
            ours += e * e;
            ASSERT_LE(std::fabs(e), 1.5 * g.step + 8 * f16_at(block) + f16_at(block + 2) + 1e-7)
                << "shape " << static_cast<int>(shape) << " row " << row << " super-block " << s << " element "
                << 32 * j + l;
          }
        }
        EXPECT_LE(ours, 1.10 * plain + 1e-12) << "shape " << static_cast<int>(shape) << " row " << row << " block " << s;
        total_ours += ours;
        total_plain += plain;
      }
    }
    // Reported, not asserted: how much the search gains over the plain grid.
    std::printf("q4_k shape %d: squared error %.3fx the plain min/max grid's\n", static_cast<int>(shape),
                total_ours / total_plain);
  }
}

TEST(Q4KCodec, ConstantAndZeroRowsComeBackExactly) {
  for (float v : {0.0f, 0.5f, -0.25f}) {
    std::vector<float> x(kSuper, v), back(kSuper);
    std::vector<uint8_t> bytes(kBytes);
    quantize_row(DType::kQ4K, x.data(), kSuper, bytes.data());
    dequantize_row(DType::kQ4K, bytes.data(), kSuper, back.data());
    for (int i = 0; i < kSuper; ++i) ASSERT_NEAR(back[i], v, 1e-3 * std::fabs(v)) << v << " element " << i;
  }
}

TEST(Q4KCodec, StorableOnlyInWholeSuperBlocks) {
  EXPECT_TRUE(storable_as(DType::kQ4K, 256));
  EXPECT_TRUE(storable_as(DType::kQ4K, 2048));
  EXPECT_FALSE(storable_as(DType::kQ4K, 64));
  EXPECT_FALSE(storable_as(DType::kQ4K, 288));
  EXPECT_EQ(dtype_block_elems(DType::kQ4K), 256);
  EXPECT_EQ(dtype_block_bytes(DType::kQ4K), 144);
  EXPECT_EQ(dtype_name(DType::kQ4K), "q4_k");
}

}  // namespace

namespace cpu {
namespace {

constexpr double kRoundingTol = 1e-5;
constexpr double kActivationHalfStep = 0.5001;

struct Rows {
  int64_t rows, n;
  size_t row_bytes;
  std::vector<uint8_t> storage;  // rows start 1 byte past an aligned address
  std::vector<double> values, offsets;
  const uint8_t* row(int64_t r) const { return storage.data() + 1 + r * row_bytes; }
};

Rows make_rows(int64_t rows, int64_t n, std::mt19937& rng, Shape shape = Shape::kUniform) {
  Rows w{rows, n, static_cast<size_t>(n / 256 * 144), {}, {}, {}};
  w.storage.resize(1 + rows * w.row_bytes);
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> f = make_row(shape, n, rng);
    quantize_row(DType::kQ4K, f.data(), n, w.storage.data() + 1 + r * w.row_bytes);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* block = w.row(r) + (i / 256) * 144;
      w.values.push_back(element(block, static_cast<int>(i % 256)));
      w.offsets.push_back(offset_of(block, static_cast<int>(i % 256)));
    }
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

Expected expected(const double* w, const double* offsets, const float* x, int64_t n) {
  double ref = 0, magnitude = 0, quantization = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    double amax = 0, w_abs = 0;
    for (int64_t i = b * 32; i < b * 32 + 32; ++i) {
      ref += w[i] * x[i];
      magnitude += std::fabs(w[i] * x[i]) + offsets[i] * std::fabs(x[i]);
      amax = std::max(amax, std::fabs(double{x[i]}));
      w_abs += std::fabs(w[i]);
    }
    quantization += kActivationHalfStep * amax / 127.0 * w_abs;
  }
  return {ref, quantization + kRoundingTol * (magnitude + quantization)};
}

class Q4KKernelTest : public ::testing::TestWithParam<std::string> {
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
  float dot(const Rows& w, int64_t r, const std::vector<ActivationBlock>& xq) const {
    return kernels_->dot_q4_k(w.row(r), xq.data(), w.n / 256);
  }
  const QuantKernels* kernels_ = nullptr;
  std::mt19937 rng_{20261124};
};

TEST_P(Q4KKernelTest, ActivationSumsAreTheSumOfTheirQuants) {
  const std::vector<float> x = random_floats(512, rng_, -2.0f, 3.0f);
  for (const ActivationBlock& b : quantize(x)) {
    int32_t sum = 0;
    for (int8_t q : b.q) sum += q;
    ASSERT_EQ(b.sum, sum);
  }
}

TEST_P(Q4KKernelTest, DotProductsMatchFloat64WithinTheBound) {
  for (Shape shape : {Shape::kUniform, Shape::kSkewed, Shape::kMixedRanges}) {
    for (int64_t n : {256, 768, 4096}) {
      const Rows w = make_rows(3, n, rng_, shape);
      for (int64_t r = 0; r < w.rows; ++r) {
        const std::vector<float> x = random_floats(n, rng_, -1.0f, 1.5f);
        const Expected e = expected(&w.values[r * n], &w.offsets[r * n], x.data(), n);
        EXPECT_NEAR(dot(w, r, quantize(x)), e.ref, e.bound)
            << "shape " << static_cast<int>(shape) << " n " << n << " row " << r;
      }
    }
  }
}

TEST_P(Q4KKernelTest, OneHotActivationPicksOutExactlyThatWeight) {
  const Rows w = make_rows(1, 512, rng_);
  for (int64_t k = 0; k < 512; ++k) {
    std::vector<float> x(512, 0.0f);
    x[k] = 1.0f;
    // 1/127 * 127 is 1 within an ulp; the min is subtracted separately, so
    // the rounding scales with |w_k| + min_k.
    ASSERT_NEAR(dot(w, 0, quantize(x)), w.values[k], 1e-6 * (std::fabs(w.values[k]) + w.offsets[k])) << "k " << k;
  }
}

TEST_P(Q4KKernelTest, BoundRejectsWrongKernels) {
  // Plausible bugs, computed in float64 on the same inputs, must fall
  // outside the bound the kernels pass: the mins forgotten; the low and high
  // nibbles of a chunk exchanged (sub-block 2c's levels read from 2c + 1's
  // nibbles, each keeping its own scale and min); sub-blocks 4-7 reading
  // pairs 0-3's 6 bits only. Random rows could hide the last two in the
  // noise, so the row is made for them (Shape::kRamps): even sub-blocks rise
  // from 0 to 1 (levels 0..15 up), odd ones fall from 0 to -1 (levels 15..0
  // down), sub-blocks 4-7 twice as wide as 0-3; activations are 1 on even
  // sub-blocks and 0.5 on odd ones, so neither error cancels.
  const int64_t n = 512;
  const Rows w = make_rows(1, n, rng_, Shape::kRamps);
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = (i / 32) % 2 == 0 ? 1.0f : 0.5f;
  const Expected e = expected(w.values.data(), w.offsets.data(), x.data(), n);
  EXPECT_NEAR(dot(w, 0, quantize(x)), e.ref, e.bound);
  double no_mins = 0, swapped = 0, low_pairs = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* block = w.row(0) + (i / 256) * 144;
    const int in_block = static_cast<int>(i % 256);
    const int chunk = in_block / 64, l = in_block % 32;
    const bool low = (in_block % 64) < 32;
    const uint8_t byte = block[16 + 32 * chunk + l];
    const int q = low ? byte % 16 : byte / 16, other_q = low ? byte / 16 : byte % 16;
    int scale, min;
    pair(block, in_block / 32, &scale, &min);
    const double d = f16_at(block), dmin = f16_at(block + 2);
    no_mins += (w.values[i] + w.offsets[i]) * x[i];
    swapped += (d * scale * other_q - dmin * min) * x[i];
    pair(block, in_block / 32 % 4, &scale, &min);
    low_pairs += (d * scale * q - dmin * min) * x[i];
  }
  EXPECT_GT(std::fabs(no_mins - e.ref), e.bound);
  EXPECT_GT(std::fabs(swapped - e.ref), e.bound);
  EXPECT_GT(std::fabs(low_pairs - e.ref), e.bound);
  std::printf("bound %.4f; the bugs are off by %.3f, %.3f, %.3f\n", e.bound, std::fabs(no_mins - e.ref),
              std::fabs(swapped - e.ref), std::fabs(low_pairs - e.ref));
}

INSTANTIATE_TEST_SUITE_P(AllVariants, Q4KKernelTest,
                         ::testing::Values("scalar", "avx2", "avx512", "avx512-vnni", "neon", "neon-dotprod"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string name = param_info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// The dispatched matmul under every ISA: rows in range match float64, rows
// outside stay untouched, several tokens share their quantization.
class Q4KMatmulTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) GTEST_SKIP() << isa_name(GetParam()) << " is not supported here";
    saved_ = active_isa();
    ASSERT_TRUE(set_active_isa(GetParam()));
  }
  void TearDown() override { set_active_isa(saved_); }
  Isa saved_ = Isa::kScalar;
  std::mt19937 rng_{8};
};

TEST_P(Q4KMatmulTest, RowsInRangeMatchFloat64AndOthersAreUntouched) {
  const int64_t n_in = 512;
  for (int64_t n_tokens : {1, 3}) {
    const int64_t n_out = 9, begin = 2, end = 8;
    const Rows w = make_rows(n_out, n_in, rng_);
    const std::vector<float> x = random_floats(n_tokens * n_in, rng_);
    std::vector<ActivationBlock> xq(n_tokens * n_in / 32);
    for (int64_t t = 0; t < n_tokens; ++t) quantize_activations(xq.data() + t * 16, x.data() + t * n_in, n_in);
    std::vector<float> y(n_tokens * n_out, std::nanf(""));
    matmul_rows_typed(y.data(), x.data(), xq.data(), w.row(0), DType::kQ4K, n_tokens, n_in, n_out, begin, end);
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t r = 0; r < n_out; ++r) {
        const float got = y[t * n_out + r];
        if (r < begin || r >= end) {
          EXPECT_TRUE(std::isnan(got)) << "row " << r << " outside the range was written";
          continue;
        }
        const Expected e = expected(&w.values[r * n_in], &w.offsets[r * n_in], &x[t * n_in], n_in);
        EXPECT_NEAR(got, e.ref, e.bound) << "token " << t << " row " << r;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Q4KMatmulTest, ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon),
                         [](const ::testing::TestParamInfo<Isa>& param_info) {
                           return std::string(isa_name(param_info.param));
                         });

TEST(Q4KDispatchDeathTest, RowsMustBeWholeSuperBlocks) {
  std::vector<uint8_t> w(1024);
  std::vector<float> x(288), y(1);
  std::vector<ActivationBlock> xq(9);
  EXPECT_TRUE(matmul_dtype_supported(DType::kQ4K));
  EXPECT_TRUE(needs_quantized_activations(DType::kQ4K));
  EXPECT_DEATH(matmul_rows_typed(y.data(), x.data(), xq.data(), w.data(), DType::kQ4K, 1, 288, 1, 0, 1),
               "internal check failed");
}

}  // namespace
}  // namespace cpu
}  // namespace tandem
