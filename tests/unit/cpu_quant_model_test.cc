// The CPU backend running a model whose matrices are f16, bf16, Q8_0, Q4_0 or
// Q4_K (convert_weights of a synthetic tiny-gqa model: dim 64, hidden 96, 4
// layers, 8/2 heads, vocab 512; every row a multiple of 32, w_down's 96 not
// of 64; Q4_K needs rows of whole 256s, so it runs the same layout at dim
// 256, hidden 512, 2 layers), against the f32 model run on the very same
// weights, dequantized.
// The weights being equal, what differs is what the kernels do:
//  - f16/bf16 rows times f32 activations: float rounding in another order.
//    Tolerance 1e-4 of the logits' RMS (the f32 kernels agree with float64
//    to ~1e-6 per matmul; 4 layers and norms amplify that by ~10, not 100).
//  - Q8_0/Q4_0/Q4_K rows times activations rounded to 8 bits per block of 32:
//    each activation is off by up to max|block| / 254, an RMS relative error
//    of ~0.5% per matmul input (the max of 32 is ~2-2.5 RMS: 2.2/254/sqrt(3)).
//    29 matmuls (7 per layer, the classifier) add in quadrature to ~3%, and
//    the largest of 512 logits' errors is ~3x their RMS: tolerance 10% of
//    the logits' RMS. A wrong weight, block or scale moves logits by ~100%.
// Greedy tokens must then be equal at every step where the f32 model's best
// logit leads the runner-up by more than twice the tolerance; after the
// first closer call the two runs may rightly part ways, so the check stops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/llama_model.h"
#include "runtime/quantize.h"
#include "runtime/synthetic.h"

namespace tandem {
namespace {

constexpr int kSteps = 12;

// `w` with every matrix replaced by an f32 copy of its values.
LlamaWeights dequantized(const LlamaWeights& w, std::vector<std::vector<float>>& storage) {
  LlamaWeights out = w;
  auto widen = [&](Tensor& t) {
    std::vector<float>& values = storage.emplace_back(t.numel());
    const size_t row_bytes = t.bytes() / t.rows();
    for (int64_t r = 0; r < t.rows(); ++r)
      dequantize_row(t.dtype, static_cast<const uint8_t*>(t.data) + r * row_bytes, t.row_length(),
                     values.data() + r * t.row_length());
    t = Tensor::view(values.data(), DType::kF32, {t.dim(0), t.dim(1)});
  };
  widen(out.embedding);
  for (auto& l : out.layers)
    for (Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_down, &l.w_up}) widen(*t);
  if (w.classifier.data == w.embedding.data) {
    out.classifier = out.embedding;
  } else {
    widen(out.classifier);
  }
  return out;
}

// Logits after the prompt and after each of `tokens` (teacher forcing: both
// models see the same inputs, so their logits compare step by step).
std::vector<std::vector<float>> logits_along(const LlamaWeights& w, const std::vector<int>& prompt,
                                             const std::vector<int>& tokens) {
  CpuBackend cpu(2);
  auto model = LlamaModel::create(cpu, w, {});
  EXPECT_TRUE(model.ok()) << model.status().message();
  if (!model.ok()) return {};
  std::vector<std::vector<float>> out(tokens.size() + 1, std::vector<float>(w.config.vocab_size));
  EXPECT_TRUE((*model)->forward(prompt, 0, out[0]).ok());
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int token = tokens[i];
    EXPECT_TRUE((*model)->forward({&token, 1}, static_cast<int64_t>(prompt.size() + i), out[i + 1]).ok());
  }
  return out;
}

int argmax(const std::vector<float>& v) { return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin()); }

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double{x} * x;
  return std::sqrt(s / static_cast<double>(v.size()));
}

double runner_up_margin(const std::vector<float>& v) {
  std::vector<float> sorted = v;
  std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
  return double{sorted[0]} - sorted[1];
}

bool multiplies_quantized_activations(DType dtype) {
  return dtype == DType::kQ8_0 || dtype == DType::kQ4_0 || dtype == DType::kQ4K;
}

LlamaConfig shape_for(DType dtype) {
  LlamaConfig c = *synthetic_shape("tiny-gqa");
  if (dtype_block_elems(dtype) > c.dim) {
    c.dim = 256;
    c.hidden_dim = 512;
    c.n_layers = 2;
  }
  return c;
}

class CpuQuantModelTest : public ::testing::TestWithParam<DType> {};

TEST_P(CpuQuantModelTest, LogitsAndGreedyTokensMatchTheF32ModelOnTheSameWeights) {
  const DType dtype = GetParam();
  const double tolerance_of_rms = multiplies_quantized_activations(dtype) ? 0.10 : 1e-4;
  auto f32 = make_synthetic_weights(shape_for(dtype), 5);
  ASSERT_TRUE(f32.ok());
  auto narrow = convert_weights(*f32, dtype);
  ASSERT_TRUE(narrow.ok()) << narrow.status().message();
  std::vector<std::vector<float>> storage;
  const LlamaWeights reference_weights = dequantized(*narrow, storage);

  // The f32 model's greedy run, then both models along its tokens.
  const std::vector<int> prompt = {1, 17, 301, 42, 7};
  std::vector<int> tokens;
  {
    std::vector<int> none;
    auto first = logits_along(reference_weights, prompt, none);
    ASSERT_FALSE(first.empty());
    tokens.push_back(argmax(first[0]));
    for (int i = 1; i < kSteps; ++i) {
      auto along = logits_along(reference_weights, prompt, tokens);
      tokens.push_back(argmax(along.back()));
    }
  }
  const auto want = logits_along(reference_weights, prompt, tokens);
  const auto got = logits_along(*narrow, prompt, tokens);
  ASSERT_EQ(got.size(), want.size());
  bool tokens_must_match = true;
  int compared_tokens = 0;
  for (size_t step = 0; step < want.size(); ++step) {
    const double tolerance = tolerance_of_rms * rms(want[step]);
    double worst = 0;
    for (size_t i = 0; i < want[step].size(); ++i)
      worst = std::max(worst, std::fabs(double{got[step][i]} - want[step][i]));
    EXPECT_LE(worst, tolerance) << dtype_name(dtype) << " step " << step << " (logits RMS " << rms(want[step]) << ")";
    if (tokens_must_match && runner_up_margin(want[step]) > 2 * tolerance) {
      EXPECT_EQ(argmax(got[step]), argmax(want[step])) << dtype_name(dtype) << " step " << step;
      ++compared_tokens;
    } else {
      tokens_must_match = false;
    }
  }
  // The check above is only worth something if it ran for a few steps.
  EXPECT_GE(compared_tokens, 3) << dtype_name(dtype);
}

TEST_P(CpuQuantModelTest, BackendRefusesRowsThatAreNotWholeBlocks) {
  const DType dtype = GetParam();
  CpuBackend cpu(1);
  std::vector<uint8_t> bytes(1024);
  const Result<Tensor> imported = cpu.import_weights(Tensor::view(bytes.data(), dtype, {2, 48}));
  if (multiplies_quantized_activations(dtype)) {
    EXPECT_EQ(imported.status().code(), StatusCode::kInvalidArgument);
  } else {
    EXPECT_TRUE(imported.ok());
  }
}

INSTANTIATE_TEST_SUITE_P(WeightDtypes, CpuQuantModelTest,
                         ::testing::Values(DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4K),
                         [](const ::testing::TestParamInfo<DType>& param_info) {
                           return std::string(dtype_name(param_info.param));
                         });

TEST(CpuQuantModel, Q8_0LogitsStayCloseToTheUnquantizedModel) {
  // Against the original f32 weights: Q8_0 rounds each weight by up to
  // max|block| / 254 too, about as much as the activations, so the same
  // 10%-of-RMS tolerance holds (Q4_0's 16 levels do not: ~6% per weight).
  auto f32 = make_synthetic_weights(*synthetic_shape("tiny-gqa"), 5);
  ASSERT_TRUE(f32.ok());
  auto q8 = convert_weights(*f32, DType::kQ8_0);
  ASSERT_TRUE(q8.ok());
  const std::vector<int> prompt = {1, 17, 301, 42, 7}, none;
  const auto want = logits_along(*f32, prompt, none);
  const auto got = logits_along(*q8, prompt, none);
  ASSERT_EQ(want.size(), 1u);
  ASSERT_EQ(got.size(), 1u);
  double worst = 0;
  for (size_t i = 0; i < want[0].size(); ++i) worst = std::max(worst, std::fabs(double{got[0][i]} - want[0][i]));
  EXPECT_LE(worst, 0.10 * rms(want[0]));
}

TEST(CpuQuantModel, ImportRefusesDtypesNoKernelComputesWith) {
  CpuBackend cpu(1);
  std::vector<int32_t> ints(64);
  EXPECT_EQ(cpu.import_weights(Tensor::view(ints.data(), DType::kI32, {2, 32})).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
