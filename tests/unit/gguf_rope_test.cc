// Llama 3.1's RoPE scaling in GGUF files: stated as metadata, or as
// llama.cpp's rope_freqs.weight table of per-frequency divisors, checked
// against a float64 evaluation of Meta's formula written here.
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <numbers>
#include <vector>

#include "runtime/rope_frequencies.h"
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
  EXPECT_EQ(a->config.rope_scaling.factor, 8.0f);
  EXPECT_EQ(a->config.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(a->config.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(a->config.rope_scaling.original_context, 8192);

  // llama.cpp's form, only the table. theta 1e7: wavelengths 6.3 and
  // 19869, one below 8192/4 and one above 8192/1, so the table is {1, factor}.
  const std::vector<float> plain = table(1e7, 8.0, 1.0, 4.0, 8192.0);
  ASSERT_EQ(plain, (std::vector<float>{1.0f, 8.0f}));
  Synthetic only_table = with_table(plain, 1e7f);
  auto b = load(only_table);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(b->config.rope_scaling.factor, 8.0f);
  EXPECT_EQ(b->config.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(b->config.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(b->config.rope_scaling.original_context, 8192);

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
  EXPECT_EQ(c->config.rope_scaling.factor, 32.0f);
  EXPECT_EQ(c->config.rope_scaling.original_context, 8192);

  Synthetic ones = with_table({1.0f, 1.0f}, 500000.0f);
  auto d = load(ones);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->config.rope_scaling.factor, 0.0f);

  // Factor 3 (the largest entry) would put 1.9 at the second frequency, not 3.
  Synthetic other = with_table({1.0f, 3.0f}, 500000.0f);
  auto e = load(other);
  EXPECT_EQ(e.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(e.status().message().find("rope_freqs.weight[1] = 3.0"), std::string::npos) << e.status().message();

  Synthetic yarn;
  yarn.extra_keys = [](GgufWriter& w) { w.add_string("llama.rope.scaling.type", "yarn"); };
  EXPECT_EQ(load(yarn).status().code(), StatusCode::kUnimplemented);
}

// The table the model's rope kernels turn by: unscaled, exactly llama2.c's
// theta^(-2j/d) as the kernels evaluated it before they took a table (so
// published stories keep their bits); with Llama 3.1's scaling, Meta's
// formula above within double rounding, over all three bands.
TEST(RopeFrequencies, TableIsTheFormulaScaledByMetas) {
  LlamaConfig c;
  c.dim = 1024, c.n_heads = 8, c.rope_theta = 500000.0f;  // heads of 128: Llama 3's
  const std::vector<double> plain = rope_inv_frequencies(c);
  ASSERT_EQ(plain.size(), 64u);
  for (int j = 0; j < 64; ++j)
    EXPECT_EQ(plain[j], std::pow(static_cast<double>(c.rope_theta), -2.0 * static_cast<double>(j) / 128.0)) << j;

  c.rope_scaling = RopeScaling{8.0f, 1.0f, 4.0f, 8192};
  const std::vector<double> scaled = rope_inv_frequencies(c);
  int kept = 0, divided = 0, blended = 0;
  for (int j = 0; j < 64; ++j) {
    const double divisor = reference_divisor(plain[j], 8, 1, 4, 8192);
    EXPECT_NEAR(scaled[j], plain[j] / divisor, 1e-14 * plain[j]) << j;
    kept += divisor == 1.0, divided += divisor == 8.0, blended += divisor > 1.0 && divisor < 8.0;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);

  c.explicit_head_dim = 64;  // the table follows the heads' width, not dim / n_heads
  EXPECT_EQ(rope_inv_frequencies(c).size(), 32u);
}

}  // namespace
}  // namespace tandem
