// Every CPU kernel but the matmuls (kernels_matmul_test.cc), for every ISA
// this CPU and build support, against a float64 reference computed here, on
// sizes that exercise the SIMD tails; tolerances and buffers as
// kernel_test_support.h states them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu/kernels_internal.h"
#include "runtime/quant_blocks.h"
#include "tests/unit/kernel_test_support.h"

namespace tandem::cpu {
namespace {

using namespace kernel_test;  // the shared fixture, buffers and tolerances

TEST_P(KernelTest, DotMatchesFloat64) {
  for (int64_t n : kOddSizes) {
    Buffer a = random_buffer(n, rng_), b = random_buffer(n, rng_);
    double ref = 0.0, scale = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      ref += double{a[i]} * b[i];
      scale += std::fabs(double{a[i]} * b[i]);
    }
    expect_close(dot(a.data(), b.data(), n), ref, kSumTol * scale, "dot n", n);
  }
  EXPECT_EQ(dot(nullptr, nullptr, 0), 0.0f);
}

TEST_P(KernelTest, DotCountsEveryIndexOnce) {
  // One-hot a: the result must be exactly b[k], whatever lane or tail k is in.
  for (int64_t n : {1, 5, 8, 13, 32, 39, 67}) {
    Buffer b = random_buffer(n, rng_);
    for (int64_t k = 0; k < n; ++k) {
      Buffer a(n);
      for (int64_t i = 0; i < n; ++i) a[i] = 0.0f;
      a[k] = 1.0f;
      ASSERT_EQ(dot(a.data(), b.data(), n), b[k]) << "n " << n << " k " << k;
    }
  }
}

TEST_P(KernelTest, AxpyAndAddMatchFloat64) {
  for (int64_t n : kOddSizes) {
    const Buffer x = random_buffer(n, rng_), y0 = random_buffer(n, rng_);
    Buffer axpy_y(n, /*guarded=*/true), add_y(n, /*guarded=*/true);
    for (int64_t i = 0; i < n; ++i) axpy_y[i] = add_y[i] = y0[i];
    const float a = -0.75f;
    axpy(axpy_y.data(), a, x.data(), n);
    add(add_y.data(), x.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double axpy_tol = kElemTol * (std::fabs(y0[i]) + std::fabs(a * x[i])) + kUnderflowFloor;
      const double add_tol = kElemTol * (std::fabs(y0[i]) + std::fabs(x[i])) + kUnderflowFloor;
      expect_close(axpy_y[i], double{y0[i]} + double{a} * x[i], axpy_tol, "axpy", i);
      expect_close(add_y[i], double{y0[i]} + x[i], add_tol, "add", i);
    }
    EXPECT_TRUE(axpy_y.guards_intact() && add_y.guards_intact()) << "n " << n;
  }
}

void check_rmsnorm(Buffer& out, Buffer& x_copy, Buffer& w, int64_t n, float eps) {
  double sum_squares = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_squares += double{x_copy[i]} * x_copy[i];
  const double scale = 1.0 / std::sqrt(sum_squares / static_cast<double>(n) + eps);
  for (int64_t i = 0; i < n; ++i) {
    const double ref = x_copy[i] * scale * w[i];
    expect_close(out[i], ref, kSumTol * std::fabs(ref) + kUnderflowFloor, "rmsnorm", i);
  }
}

TEST_P(KernelTest, RmsnormMatchesFloat64AndMayAlias) {
  for (int64_t n : kOddSizes) {
    SCOPED_TRACE(::testing::Message() << "n " << n);
    Buffer x = random_buffer(n, rng_, -3.0f, 3.0f), w = random_buffer(n, rng_, 0.5f, 1.5f);
    Buffer out(n, /*guarded=*/true);
    rmsnorm(out.data(), x.data(), w.data(), n, 1e-5f);
    check_rmsnorm(out, x, w, n, 1e-5f);
    EXPECT_TRUE(out.guards_intact());

    Buffer in_place(n, /*guarded=*/true);
    for (int64_t i = 0; i < n; ++i) in_place[i] = x[i];
    rmsnorm(in_place.data(), in_place.data(), w.data(), n, 1e-5f);
    check_rmsnorm(in_place, x, w, n, 1e-5f);
    EXPECT_TRUE(in_place.guards_intact());
  }
}

void check_softmax(std::vector<float> values, const char* what) {
  const int64_t n = static_cast<int64_t>(values.size());
  Buffer x(n, /*guarded=*/true);
  for (int64_t i = 0; i < n; ++i) x[i] = values[static_cast<size_t>(i)];
  softmax(x.data(), n);
  double max_value = -std::numeric_limits<double>::infinity(), sum = 0.0;
  for (float v : values) max_value = std::max<double>(max_value, v);
  for (float v : values) sum += std::exp(double{v} - max_value);
  for (int64_t i = 0; i < n; ++i) {
    const double ref = std::exp(double{values[static_cast<size_t>(i)]} - max_value) / sum;
    expect_close(x[i], ref, kSumTol * ref + kUnderflowFloor, what, i);
  }
  EXPECT_TRUE(x.guards_intact()) << what;
}

TEST_P(KernelTest, SoftmaxMatchesFloat64) {
  for (int64_t n : kOddSizes) {
    std::vector<float> values(static_cast<size_t>(n));
    std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
    for (float& v : values) v = dist(rng_);
    check_softmax(values, "softmax random");
  }
}

TEST_P(KernelTest, SoftmaxOfLargeAndTinyValuesDoesNotOverflow) {
  for (int64_t n : {3, 9, 33}) {
    std::vector<float> values;
    for (int64_t i = 0; i < n; ++i) values.push_back(1000.0f + static_cast<float>(i));
    check_softmax(values, "softmax 1000, 1001, ...");
    for (float& v : values) v = -v;
    check_softmax(values, "softmax -1000, -1001, ...");
  }
  // Spread over e^0 .. e^-110: results range down through subnormals to 0.
  std::vector<float> spread;
  for (int i = 0; i < 23; ++i) spread.push_back(-5.0f * static_cast<float>(i));
  check_softmax(spread, "softmax spread");
  check_softmax({42.0f}, "softmax n=1");
}

TEST_P(KernelTest, SoftmaxGivesMinusInfinityZeroWeight) {
  Buffer x(9);
  for (int64_t i = 0; i < 9; ++i) x[i] = 0.5f;
  x[3] = x[8] = -std::numeric_limits<float>::infinity();
  softmax(x.data(), 9);
  for (int64_t i = 0; i < 9; ++i) EXPECT_FLOAT_EQ(x[i], (i == 3 || i == 8) ? 0.0f : 1.0f / 7.0f) << i;
}

TEST_P(KernelTest, SwigluMatchesFloat64AndMayAlias) {
  for (int64_t n : kOddSizes) {
    SCOPED_TRACE(::testing::Message() << "n " << n);
    Buffer gate = random_buffer(n, rng_, -10.0f, 10.0f), up = random_buffer(n, rng_, -2.0f, 2.0f);
    // Extremes where e^-gate overflows or underflows.
    const float extremes[] = {-200.0f, -104.0f, -88.7f, -87.5f, 87.5f, 88.7f, 104.0f, 200.0f, 0.0f};
    for (int64_t i = 0; i < n && i < 9; ++i) gate[n - 1 - i] = extremes[i];
    Buffer out(n, /*guarded=*/true), in_place(n, /*guarded=*/true);
    for (int64_t i = 0; i < n; ++i) in_place[i] = gate[i];
    swiglu(out.data(), gate.data(), up.data(), n);
    swiglu(in_place.data(), in_place.data(), up.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double g = gate[i];
      const double ref = g / (1.0 + std::exp(-g)) * up[i];
      expect_close(out[i], ref, kElemTol * std::fabs(ref) + kUnderflowFloor, "swiglu", i);
      EXPECT_EQ(in_place[i], out[i]) << "aliased swiglu differs at " << i;
    }
    EXPECT_TRUE(out.guards_intact() && in_place.guards_intact());
  }
}

TEST_P(KernelTest, RopeRotatesInterleavedPairsByTheFormula) {
  for (int64_t head_dim : {2, 8, 64, 128}) {
    for (int64_t pos : {0, 1, 17, 4095}) {
      const int64_t n_heads = 3;
      const float theta = 10000.0f;
      Buffer v = random_buffer(n_heads * head_dim, rng_);
      Buffer rotated(n_heads * head_dim, /*guarded=*/true);
      for (int64_t i = 0; i < v.size(); ++i) rotated[i] = v[i];
      std::vector<double> inv_freq(static_cast<size_t>(head_dim / 2));
      for (int64_t j = 0; j < head_dim / 2; ++j) inv_freq[j] = std::pow(double{theta}, -2.0 * j / head_dim);
      rope_interleaved(rotated.data(), n_heads, head_dim, pos, inv_freq.data());
      for (int64_t h = 0; h < n_heads; ++h) {
        for (int64_t j = 0; j < head_dim / 2; ++j) {
          const double angle = static_cast<double>(pos) * std::pow(double{theta}, -2.0 * j / head_dim);
          const int64_t i = h * head_dim + 2 * j;
          const double v0 = v[i], v1 = v[i + 1];
          const double tol = kElemTol * (std::fabs(v0) + std::fabs(v1)) + kUnderflowFloor;
          expect_close(rotated[i], v0 * std::cos(angle) - v1 * std::sin(angle), tol, "rope even", i);
          expect_close(rotated[i + 1], v0 * std::sin(angle) + v1 * std::cos(angle), tol, "rope odd", i + 1);
        }
      }
      EXPECT_TRUE(rotated.guards_intact());
    }
  }
}

// A step's angles computed once and applied to every layer's q and k must
// turn them exactly as rope_interleaved does, so that caching them changes
// no output bit.
TEST_P(KernelTest, RopeInTwoHalvesIsBitForBitRopeInterleaved) {
  for (int64_t head_dim : {2, 8, 64, 128, 514, 640}) {  // past 512: rope_interleaved's pairs in two ranges
    for (int64_t pos : {0, 1, 17, 4095, 100000}) {
      const int64_t n_heads = 3, pairs = head_dim / 2;
      std::vector<double> inv_freq(static_cast<size_t>(pairs));
      for (int64_t j = 0; j < pairs; ++j) inv_freq[j] = std::pow(500000.0, -2.0 * j / head_dim);
      Buffer v = random_buffer(n_heads * head_dim, rng_);
      Buffer whole(v.size(), /*guarded=*/true), halves(v.size(), /*guarded=*/true);
      Buffer cosines(pairs, /*guarded=*/true), sines(pairs, /*guarded=*/true);
      for (int64_t i = 0; i < v.size(); ++i) whole[i] = halves[i] = v[i];
      rope_interleaved(whole.data(), n_heads, head_dim, pos, inv_freq.data());
      rope_angles(cosines.data(), sines.data(), pos, pairs, inv_freq.data());
      rope_rotate(halves.data(), n_heads, head_dim, cosines.data(), sines.data());
      for (int64_t i = 0; i < v.size(); ++i)
        ASSERT_EQ(halves[i], whole[i]) << "head_dim " << head_dim << " pos " << pos << " element " << i;
      EXPECT_TRUE(whole.guards_intact() && halves.guards_intact() && cosines.guards_intact() && sines.guards_intact());
    }
  }
}

// The head layouts the attention tests run: one head, and six query heads
// sharing two KV heads (GQA). The KV heads are the second and later of the
// cache row's, so a wrong offset reads another head's values.
struct HeadLayout {
  int64_t n_heads, group;
};
constexpr HeadLayout kHeadLayouts[] = {{1, 1}, {6, 3}};

AttentionHeads heads_for(const HeadLayout& layout, int64_t head_dim) {
  const int64_t kv_heads = layout.n_heads / layout.group;
  return {layout.n_heads, layout.group, head_dim, (kv_heads + 1) * head_dim};
}

TEST_P(KernelTest, AttentionHeadsMatchFloat64) {
  for (const HeadLayout& layout : kHeadLayouts) {
    for (int64_t head_dim : {8, 9, 40, 64, 72, 128}) {
      for (int64_t n_pos : {1, 2, 7, 33, 200, 257}) {
        SCOPED_TRACE(::testing::Message() << layout.n_heads << " heads, head_dim " << head_dim << " n_pos " << n_pos);
        const AttentionHeads heads = heads_for(layout, head_dim);
        const int64_t width = layout.n_heads * head_dim, kv_stride = heads.kv_stride;
        Buffer q = random_buffer(width, rng_), k = random_buffer(n_pos * kv_stride, rng_);
        Buffer v = random_buffer(n_pos * kv_stride, rng_);
        Buffer out(width, /*guarded=*/true), scratch(attention_scratch_floats(n_pos, heads), /*guarded=*/true);
        attention_heads(out.data(), q.data(), k.data() + head_dim, v.data() + head_dim, n_pos, heads, scratch.data());

        for (int64_t j = 0; j < layout.n_heads; ++j) {
          const float* k_head = k.data() + head_dim + j / layout.group * head_dim;
          const float* v_head = v.data() + head_dim + j / layout.group * head_dim;
          std::vector<double> weight(static_cast<size_t>(n_pos));
          double max_score = -std::numeric_limits<double>::infinity(), sum = 0.0;
          for (int64_t p = 0; p < n_pos; ++p) {
            double score = 0.0;
            for (int64_t i = 0; i < head_dim; ++i) score += double{q[j * head_dim + i]} * k_head[p * kv_stride + i];
            weight[static_cast<size_t>(p)] = score / std::sqrt(static_cast<double>(head_dim));
            max_score = std::max(max_score, weight[static_cast<size_t>(p)]);
          }
          for (double& wgt : weight) {
            wgt = std::exp(wgt - max_score);
            sum += wgt;
          }
          for (int64_t i = 0; i < head_dim; ++i) {
            double ref = 0.0;
            for (int64_t p = 0; p < n_pos; ++p) ref += weight[static_cast<size_t>(p)] / sum * v_head[p * kv_stride + i];
            expect_close(out[j * head_dim + i], ref, 1e-5, "attention out", j * head_dim + i);
          }
        }
        EXPECT_TRUE(out.guards_intact() && scratch.guards_intact());
      }
    }
  }
}

// Bit-for-bit equality of float arrays (no NaNs here, so == is enough).
void expect_same_bits(const float* got, const float* want, int64_t n, const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    if (got[i] != want[i]) {
      ADD_FAILURE() << what << " differs at " << i << ": " << got[i] << " vs " << want[i];
      return;
    }
  }
}

// attention_heads must round exactly as dot(), softmax() and axpy() composed
// in position order do for each head (the arithmetic the golden outputs were
// made with), and attention_heads_paged exactly as attention_heads, for any
// block size and block order, with out aliasing q or not. Head sizes: SIMD
// tails (1, 9, 71), whole vectors that are not a whole register (40, 72),
// one and two cache lines' worth (64, 128) and more plus a tail (200).
TEST_P(KernelTest, AttentionHeadsAreDotSoftmaxAxpyBitForBitAndPagedMatchesThem) {
  for (const HeadLayout& layout : kHeadLayouts) {
    for (int64_t head_dim : {1, 9, 40, 64, 71, 72, 128, 200}) {
      for (int64_t n_pos : {1, 7, 33, 200}) {
        SCOPED_TRACE(::testing::Message() << layout.n_heads << " heads, head_dim " << head_dim << " n_pos " << n_pos);
        const AttentionHeads heads = heads_for(layout, head_dim);
        const int64_t width = layout.n_heads * head_dim, kv_stride = heads.kv_stride;
        const int64_t scratch_floats = attention_scratch_floats(n_pos, heads);
        Buffer q = random_buffer(width, rng_), k = random_buffer(n_pos * kv_stride, rng_);
        Buffer v = random_buffer(n_pos * kv_stride, rng_);

        // The composition, head by head, through the public kernels of the active ISA.
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        std::vector<float> want_scores(static_cast<size_t>(layout.n_heads * n_pos));
        std::vector<float> want(static_cast<size_t>(width), 0.0f);
        for (int64_t j = 0; j < layout.n_heads; ++j) {
          const float* k_head = k.data() + head_dim + j / layout.group * head_dim;
          const float* v_head = v.data() + head_dim + j / layout.group * head_dim;
          float* scores = want_scores.data() + j * n_pos;
          const float* q_head = q.data() + j * head_dim;
          float* want_head = want.data() + j * head_dim;
          for (int64_t p = 0; p < n_pos; ++p) scores[p] = dot(q_head, k_head + p * kv_stride, head_dim) * scale;
          softmax(scores, n_pos);
          for (int64_t p = 0; p < n_pos; ++p) axpy(want_head, scores[p], v_head + p * kv_stride, head_dim);
        }

        Buffer out(width, /*guarded=*/true), scratch(scratch_floats, /*guarded=*/true);
        attention_heads(out.data(), q.data(), k.data() + head_dim, v.data() + head_dim, n_pos, heads, scratch.data());
        expect_same_bits(scratch.data(), want_scores.data(), layout.n_heads * n_pos, "contiguous scores");
        expect_same_bits(out.data(), want.data(), width, "contiguous out");
        EXPECT_TRUE(out.guards_intact() && scratch.guards_intact());

        Buffer in_place(width, /*guarded=*/true);
        std::copy(q.data(), q.data() + width, in_place.data());
        attention_heads(in_place.data(), in_place.data(), k.data() + head_dim, v.data() + head_dim, n_pos, heads,
                        scratch.data());
        expect_same_bits(in_place.data(), want.data(), width, "contiguous out aliasing q");
        EXPECT_TRUE(in_place.guards_intact());

        for (int64_t block_size : {1, 3, 16, 32, 256}) {
          SCOPED_TRACE(::testing::Message() << "block_size " << block_size);
          // The sequence's blocks in reverse order among spare ones, so block
          // order and pool order differ; rows of unused blocks hold garbage.
          const int64_t n_blocks = (n_pos + block_size - 1) / block_size;
          const int64_t pool_blocks = 2 * n_blocks + 1;
          std::vector<int32_t> table(static_cast<size_t>(n_blocks));
          for (int64_t b = 0; b < n_blocks; ++b) table[b] = static_cast<int32_t>(2 * (n_blocks - 1 - b) + 1);
          Buffer k_pool = random_buffer(pool_blocks * block_size * kv_stride, rng_);
          Buffer v_pool = random_buffer(pool_blocks * block_size * kv_stride, rng_);
          for (int64_t p = 0; p < n_pos; ++p) {
            const int64_t row = table[p / block_size] * block_size + p % block_size;
            std::copy(k.data() + p * kv_stride, k.data() + (p + 1) * kv_stride, k_pool.data() + row * kv_stride);
            std::copy(v.data() + p * kv_stride, v.data() + (p + 1) * kv_stride, v_pool.data() + row * kv_stride);
          }
          Buffer paged(width, /*guarded=*/true), paged_scratch(scratch_floats, /*guarded=*/true);
          attention_heads_paged(paged.data(), q.data(), k_pool.data() + head_dim, v_pool.data() + head_dim, n_pos,
                                table.data(), block_size, heads, paged_scratch.data());
          expect_same_bits(paged_scratch.data(), want_scores.data(), layout.n_heads * n_pos, "paged scores");
          expect_same_bits(paged.data(), want.data(), width, "paged out");
          EXPECT_TRUE(paged.guards_intact() && paged_scratch.guards_intact());

          std::copy(q.data(), q.data() + width, in_place.data());
          attention_heads_paged(in_place.data(), in_place.data(), k_pool.data() + head_dim, v_pool.data() + head_dim,
                                n_pos, table.data(), block_size, heads, paged_scratch.data());
          expect_same_bits(in_place.data(), want.data(), width, "paged out aliasing q");
          EXPECT_TRUE(in_place.guards_intact());
        }
      }
    }
  }
}

// Every f16 case the conversion must round as quant::f16_from_f32 does:
// exact halves, ties to even both ways, subnormals, the largest finite half
// and what overflows it, zeros and infinities of both signs.
std::vector<float> f16_conversion_cases(std::mt19937& rng) {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 65519.0f, 65520.0f, -70000.0f, 1e-8f, -3e-6f,
                          5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 6.1035156e-5f, 6.09e-5f,
                          1.0f + 1.0f / 2048.0f, 1.0f + 3.0f / 2048.0f, std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()};
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  for (int i = 0; i < 200; ++i) v.push_back(std::ldexp(mantissa(rng), i % 40 - 28));
  return v;
}

TEST_P(KernelTest, F16FromF32RowRoundsAsTheScalarConversionForEveryTail) {
  const std::vector<float> cases = f16_conversion_cases(rng_);
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{8}, int64_t{13}, static_cast<int64_t>(cases.size())}) {
    for (int64_t start = 0; start + n <= static_cast<int64_t>(cases.size()); start += n) {
      std::vector<uint16_t> got(static_cast<size_t>(n + 2), 0xBEEF);  // two guards after the row
      f16_from_f32_row(got.data(), cases.data() + start, n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(got[i], quant::f16_from_f32(cases[start + i])) << "value " << cases[start + i] << " n " << n;
      }
      EXPECT_EQ(got[n], 0xBEEF);
      EXPECT_EQ(got[n + 1], 0xBEEF);
    }
  }
}

// An f16 pool gives, bit for bit, what the f32 kernel gives on the same
// values widened: the arithmetic is the f32 kernel's, only the loads differ.
TEST_P(KernelTest, AttentionOverAnF16PoolIsTheF32KernelOnWidenedValues) {
  for (const HeadLayout& layout : kHeadLayouts) {
    for (int64_t head_dim : {1, 9, 40, 64, 71, 128}) {
      for (int64_t n_pos : {1, 7, 33, 200}) {
        for (int64_t block_size : {1, 3, 16}) {
          SCOPED_TRACE(::testing::Message() << layout.n_heads << " heads, head_dim " << head_dim << " n_pos " << n_pos
                                            << " block_size " << block_size);
          const AttentionHeads heads = heads_for(layout, head_dim);
          const int64_t width = layout.n_heads * head_dim, kv_stride = heads.kv_stride;
          const int64_t n_blocks = (n_pos + block_size - 1) / block_size;
          std::vector<int32_t> table(static_cast<size_t>(n_blocks));
          for (int64_t b = 0; b < n_blocks; ++b) table[b] = static_cast<int32_t>(n_blocks - 1 - b);
          const int64_t pool_values = n_blocks * block_size * kv_stride;
          Buffer k32 = random_buffer(pool_values, rng_), v32 = random_buffer(pool_values, rng_);
          std::vector<uint16_t> k16(static_cast<size_t>(pool_values)), v16(static_cast<size_t>(pool_values));
          for (int64_t i = 0; i < pool_values; ++i) {
            k16[i] = quant::f16_from_f32(k32[i]);
            v16[i] = quant::f16_from_f32(v32[i]);
            k32[i] = quant::f32_from_f16(k16[i]);
            v32[i] = quant::f32_from_f16(v16[i]);
          }
          Buffer q = random_buffer(width, rng_);
          Buffer want(width, /*guarded=*/true), got(width, /*guarded=*/true);
          Buffer scratch(attention_scratch_floats(n_pos, heads), /*guarded=*/true);
          attention_heads_paged(want.data(), q.data(), k32.data() + head_dim, v32.data() + head_dim, n_pos,
                                table.data(), block_size, heads, scratch.data());
          attention_heads_paged_f16(got.data(), q.data(), k16.data() + head_dim, v16.data() + head_dim, n_pos,
                                    table.data(), block_size, heads, scratch.data());
          expect_same_bits(got.data(), want.data(), width, "f16 pool out");
          EXPECT_TRUE(got.guards_intact() && scratch.guards_intact());
        }
      }
    }
  }
}

// fma_loop() is the compute roof `tandem bench kernels` divides by: on each
// ISA it must run (no instruction the ISA lacks) and count its FLOPs in
// proportion to its rounds, at least one 2-FLOP multiply-add a round.
TEST_P(KernelTest, FmaLoopCountsItsFlopsInProportionToItsRounds) {
  EXPECT_EQ(fma_loop(0), 0.0);
  const double flops = fma_loop(1000);
  EXPECT_GE(flops, 2.0 * 1000);
  EXPECT_EQ(fma_loop(3000), 3 * flops);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, KernelTest, ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon),
                         [](const ::testing::TestParamInfo<Isa>& param_info) {
                           return std::string(isa_name(param_info.param));
                         });

TEST(KernelDispatchTest, IsaNamesRoundTripAndUnknownNamesAreRejected) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) EXPECT_EQ(parse_isa_name(isa_name(isa)), isa);
  for (const char* bad : {"", "AVX2", "avx", "avx512f", "AVX512", "scalar ", " scalar", "sse", "NEON", "sve"}) {
    EXPECT_EQ(parse_isa_name(bad), std::nullopt) << '"' << bad << '"';
  }
}

TEST(KernelDispatchTest, InitialIsaFollowsTheEnvironmentOnlyWhenSupported) {
  EXPECT_EQ(choose_initial_isa(nullptr), best_isa());
  EXPECT_EQ(choose_initial_isa("scalar"), Isa::kScalar);
  EXPECT_EQ(choose_initial_isa("bogus"), best_isa());
  EXPECT_EQ(choose_initial_isa(""), best_isa());
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512, Isa::kNeon})  // x86 or aarch64 only
    EXPECT_EQ(choose_initial_isa(isa_name(isa).data()), isa_supported(isa) ? isa : best_isa());
  // AVX-512 implies AVX2: a CPU with it can still be asked for the AVX2 kernels.
  if (isa_supported(Isa::kAvx512)) {
    EXPECT_TRUE(isa_supported(Isa::kAvx2));
  }
}

TEST(KernelDispatchTest, SetActiveIsaRefusesUnsupportedAndKeepsTheCurrentOne) {
  EXPECT_TRUE(isa_supported(Isa::kScalar));
  EXPECT_TRUE(isa_supported(best_isa()));
  const Isa before = active_isa();
  ASSERT_TRUE(set_active_isa(Isa::kScalar));
  EXPECT_EQ(active_isa(), Isa::kScalar);
  EXPECT_FALSE(set_active_isa(static_cast<Isa>(99)));  // never supported
  EXPECT_EQ(active_isa(), Isa::kScalar);
  // An unsupported ISA is refused; a supported one is not tried here.
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) EXPECT_TRUE(isa_supported(isa) || !set_active_isa(isa));
  EXPECT_EQ(active_isa(), Isa::kScalar);
  EXPECT_TRUE(set_active_isa(before));
}

}  // namespace
}  // namespace tandem::cpu
