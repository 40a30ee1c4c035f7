// Llama 3.1's RoPE scaling in GGUF files: stated as metadata, or as
// llama.cpp's rope_freqs.weight table of per-frequency divisors, checked
// against a float64 evaluation of Meta's formula written here.
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <numbers>
#include <vector>

#include "tests/unit/gguf_synthetic.h"

namespace tandem {
namespace {

using gguf::GgmlType;
using testing::GgufModelTest;
using testing::Synthetic;

// Llama 3's scaling of rotary frequency `freq`, written from Meta's
// reference (llama3 apply_scaling): wavelengths shorter than
// original/high_freq_factor keep their frequency, longer than
// original/low_freq_factor are divided by the factor, and between them the
// frequency is a blend of the two. Returned as the divisor
// freq / scaled_freq, the form llama.cpp's rope_freqs.weight stores.
double reference_divisor(double freq, double factor, double low, double high, double original) {
  const double wavelen = 2 * std::numbers::pi / freq;
  if (wavelen < original / high) return 1.0;
  if (wavelen > original / low) return factor;
  const double smooth = (original / wavelen - low) / (high - low);
  const double scaled = (1 - smooth) * freq / factor + smooth * freq;
  return freq / scaled;
}

// rope_freqs.weight for head_dim 4: the divisors of its two frequencies,
// 1 and theta^(-1/2).
std::vector<float> table(double theta, double factor, double low, double high, double original) {
  std::vector<float> t;
  for (int i = 0; i < 2; ++i)
    t.push_back(static_cast<float>(reference_divisor(std::pow(theta, -2.0 * i / 4), factor, low, high, original)));
  return t;
}

Synthetic with_table(std::vector<float> values, float theta) {
  Synthetic s;
  s.theta = theta;
  s.extra_tensors = [values](GgufWriter& w, std::deque<std::vector<float>>& buffers) {
    auto& b = buffers.emplace_back(values);
    w.add_tensor("rope_freqs.weight", GgmlType::kF32, {2},
                 {reinterpret_cast<const uint8_t*>(b.data()), b.size() * 4});
  };
  return s;
}

TEST_F(GgufModelTest, Llama3ScalingFromMetadataOrTable) {
  Synthetic meta;
  meta.extra_keys = [](GgufWriter& w) {
    w.add_string("llama.rope.scaling.type", "llama3");
    w.add_f32("llama.rope.scaling.factor", 8.0f);
    w.add_f32("llama.rope.scaling.low_freq_factor", 1.0f);
    w.add_f32("llama.rope.scaling.high_freq_factor", 4.0f);
    w.add_u32("llama.rope.scaling.original_context_length", 8192);
  };
  auto a = load(meta);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->rope_scaling.factor, 8.0f);
  EXPECT_EQ(a->rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(a->rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(a->rope_scaling.original_context, 8192);

  // llama.cpp's form, only the table. theta 1e7: wavelengths 6.3 and
  // 19869, one below 8192/4 and one above 8192/1, so the table is {1, factor}.
  const std::vector<float> plain = table(1e7, 8.0, 1.0, 4.0, 8192.0);
  ASSERT_EQ(plain, (std::vector<float>{1.0f, 8.0f}));
  Synthetic only_table = with_table(plain, 1e7f);
  auto b = load(only_table);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(b->rope_scaling.factor, 8.0f);
  EXPECT_EQ(b->rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(b->rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(b->rope_scaling.original_context, 8192);

  // theta 500000: wavelengths 6.3 and 4443, the second between the
  // thresholds, so its divisor is a blend; with the factor stated in the
  // metadata the table is checked against it.
  const std::vector<float> blended = table(500000.0, 32.0, 1.0, 4.0, 8192.0);
  ASSERT_GT(blended[1], 1.0f);
  ASSERT_LT(blended[1], 32.0f);
  Synthetic both = with_table(blended, 500000.0f);
  both.extra_keys = [](GgufWriter& w) {
    w.add_string("llama.rope.scaling.type", "llama3");
    w.add_f32("llama.rope.scaling.factor", 32.0f);
  };
  auto c = load(both);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->rope_scaling.factor, 32.0f);
  EXPECT_EQ(c->rope_scaling.original_context, 8192);

  Synthetic ones = with_table({1.0f, 1.0f}, 500000.0f);
  auto d = load(ones);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->rope_scaling.factor, 0.0f);

  // Factor 3 (the largest entry) would put 1.9 at the second frequency, not 3.
  Synthetic other = with_table({1.0f, 3.0f}, 500000.0f);
  auto e = load(other);
  EXPECT_EQ(e.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(e.status().message().find("rope_freqs.weight[1] = 3.0"), std::string::npos) << e.status().message();

  Synthetic yarn;
  yarn.extra_keys = [](GgufWriter& w) { w.add_string("llama.rope.scaling.type", "yarn"); };
  EXPECT_EQ(load(yarn).status().code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace tandem
