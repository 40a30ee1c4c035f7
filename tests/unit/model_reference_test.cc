// The runtime's forward against the float64 reference (reference_llama.h):
// greedy continuations must pick the same tokens and logits must agree within
// a float32 tolerance. Also: chunked prefill equals token-by-token decoding.
#include <gtest/gtest.h>

#include <cstdint>

#include <algorithm>
#include <cmath>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/kernels.h"
#include "runtime/llama2c_loader.h"
#include "runtime/llama_model.h"
#include "runtime/synthetic.h"
#include "runtime/tokenizer.h"
#include "tests/unit/reference_llama.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

using testing::ReferenceLlama;

// float32 accumulation over a few hundred terms per dot, through 5 layers:
// the logits stay within 1e-4 of the float64 ones relative to their scale.
constexpr double kLogitTolerance = 1e-4;

double max_relative_diff(const std::vector<float>& got, const std::vector<double>& want) {
  double scale = 0, diff = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::abs(want[i]));
    diff = std::max(diff, std::abs(got[i] - want[i]));
  }
  return diff / std::max(scale, 1e-12);
}

int argmax(const std::vector<double>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Greedy continuation of `prompt` for `steps` tokens by both paths; returns
// the runtime's tokens after asserting both agree.
void expect_same_greedy_path(LlamaModel& model, ReferenceLlama& ref, const std::vector<int>& prompt,
                             int steps) {
  std::vector<float> logits(model.config().vocab_size);
  std::vector<double> ref_logits;
  for (size_t i = 0; i < prompt.size(); ++i) ref_logits = ref.forward(prompt[i], static_cast<int>(i));
  ASSERT_TRUE(model.forward(prompt, 0, logits).ok());  // batched prefill
  for (int step = 0; step < steps; ++step) {
    const int pos = static_cast<int>(prompt.size()) + step;
    ASSERT_LT(max_relative_diff(logits, ref_logits), kLogitTolerance) << "at position " << pos - 1;
    const int want = argmax(ref_logits);
    const int got = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    ASSERT_EQ(got, want) << "greedy paths diverge at position " << pos;
    if (pos >= model.context()) break;
    ref_logits = ref.forward(want, pos);
    ASSERT_TRUE(model.forward(std::span<const int>(&got, 1), pos, logits).ok());
  }
}

class Stories260KReference : public ::testing::TestWithParam<std::string> {};

TEST_P(Stories260KReference, GreedyContinuationMatchesFloat64) {
  auto weights = load_llama2c(testing::bundled_checkpoint());
  ASSERT_TRUE(weights.ok()) << weights.status().to_string();
  auto tokenizer = Tokenizer::load_llama2c(testing::bundled_tokenizer(), 512);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  const auto ref_weights = testing::parse_llama2c_reference(testing::read_file(testing::bundled_checkpoint()));
  ReferenceLlama ref(ref_weights);

  CpuBackend backend(2);
  auto model = LlamaModel::create(backend, std::move(weights).value(), {});
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  expect_same_greedy_path(**model, ref, tokenizer->encode(GetParam(), true, false), 48);
}

INSTANTIATE_TEST_SUITE_P(Prompts, Stories260KReference,
                         ::testing::Values("", "Once upon a time", "The cat sat on the mat. It was",
                                           "Tom and Sue went to the beach",
                                           "A dog named Max had a red ball"));

TEST(SyntheticReference, GroupedQueryAttentionMatchesFloat64) {
  auto config = synthetic_shape("tiny-gqa");
  ASSERT_TRUE(config.has_value());
  ASSERT_LT(config->n_kv_heads, config->n_heads);
  auto weights = make_synthetic_weights(*config, 7);
  ASSERT_TRUE(weights.ok());
  const auto ref_weights = testing::reference_from(*weights);
  ReferenceLlama ref(ref_weights);
  CpuBackend backend(2);
  auto model = LlamaModel::create(backend, std::move(weights).value(), {});
  ASSERT_TRUE(model.ok());
  expect_same_greedy_path(**model, ref, {1, 17, 300, 42, 9}, 24);
}

TEST(SyntheticReference, ScalarKernelsMatchFloat64) {
  testing::ScopedIsa scalar(cpu::Isa::kScalar);
  ASSERT_TRUE(scalar.ok());
  auto weights = make_synthetic_weights(*synthetic_shape("tiny-gqa"), 11);
  ASSERT_TRUE(weights.ok());
  const auto ref_weights = testing::reference_from(*weights);
  ReferenceLlama ref(ref_weights);
  CpuBackend backend(1);
  auto model = LlamaModel::create(backend, std::move(weights).value(), {});
  ASSERT_TRUE(model.ok());
  expect_same_greedy_path(**model, ref, {1, 5, 6}, 16);
}

TEST(LlamaModel, ChunkedPrefillEqualsOneTokenAtATime) {
  auto w1 = make_synthetic_weights(*synthetic_shape("tiny-gqa"), 3);
  auto w2 = make_synthetic_weights(*synthetic_shape("tiny-gqa"), 3);
  ASSERT_TRUE(w1.ok() && w2.ok());
  CpuBackend backend(2);
  LlamaModelOptions chunked;
  chunked.max_batch = 4;  // an 11-token prompt runs as 4 + 4 + 3
  auto a = LlamaModel::create(backend, std::move(w1).value(), chunked);
  auto b = LlamaModel::create(backend, std::move(w2).value(), {});
  ASSERT_TRUE(a.ok() && b.ok());
  const std::vector<int> prompt = {1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  std::vector<float> batched(512), single(512);
  ASSERT_TRUE((*a)->forward(prompt, 0, batched).ok());
  for (size_t i = 0; i < prompt.size(); ++i)
    ASSERT_TRUE((*b)->forward(std::span<const int>(&prompt[i], 1), static_cast<int64_t>(i), single).ok());
  for (size_t i = 0; i < batched.size(); ++i) EXPECT_NEAR(batched[i], single[i], 1e-4f) << i;
}

TEST(LlamaModel, RejectsBadForwardArguments) {
  auto w = make_synthetic_weights(*synthetic_shape("tiny-gqa"), 1);
  ASSERT_TRUE(w.ok());
  CpuBackend backend(1);
  LlamaModelOptions options;
  options.context = 8;
  auto model = LlamaModel::create(backend, std::move(w).value(), options);
  ASSERT_TRUE(model.ok());
  std::vector<float> logits(512);
  const std::vector<int> ok_tokens = {1, 2};
  EXPECT_EQ((*model)->forward({}, 0, logits).code(), StatusCode::kInvalidArgument);
  const std::vector<int> bad_token = {1, 512};
  EXPECT_EQ((*model)->forward(bad_token, 0, logits).code(), StatusCode::kInvalidArgument);
  const std::vector<int> negative = {-1};
  EXPECT_EQ((*model)->forward(negative, 0, logits).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*model)->forward(ok_tokens, 7, logits).code(), StatusCode::kOutOfRange);
  EXPECT_EQ((*model)->forward(ok_tokens, INT64_MAX, logits).code(), StatusCode::kOutOfRange);  // start + n wraps
  std::vector<float> short_logits(10);
  EXPECT_EQ((*model)->forward(ok_tokens, 0, short_logits).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*model)->forward(ok_tokens, 6, logits).ok());
}

TEST(LlamaModel, RefusesContextBeyondTraining) {
  auto w = make_synthetic_weights(*synthetic_shape("tiny-gqa"), 1);
  ASSERT_TRUE(w.ok());
  CpuBackend backend(1);
  LlamaModelOptions options;
  options.context = 257;  // tiny-gqa trains 256 positions
  auto model = LlamaModel::create(backend, std::move(w).value(), options);
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find("257"), std::string::npos);
}

// A header's trained context is not what a run needs: without an explicit
// context the cache is sized for at most kDefaultContext positions, and an
// explicit one up to the trained context is honoured.
TEST(LlamaModel, DefaultContextIsCappedNotTheHeadersClaim) {
  LlamaConfig c = *synthetic_shape("tiny-gqa");
  c.max_seq_len = 1 << 22;  // what a hostile or merely long-context header says
  CpuBackend backend(1);
  auto w = make_synthetic_weights(c, 1);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  auto by_default = LlamaModel::create(backend, *w, LlamaModelOptions{});
  ASSERT_TRUE(by_default.ok()) << by_default.status().to_string();
  EXPECT_EQ((*by_default)->context(), kDefaultContext);
  LlamaModelOptions longer;
  longer.context = 3 * kDefaultContext;
  auto asked = LlamaModel::create(backend, std::move(w).value(), longer);
  ASSERT_TRUE(asked.ok()) << asked.status().to_string();
  EXPECT_EQ((*asked)->context(), 3 * kDefaultContext);
}

}  // namespace
}  // namespace tandem
