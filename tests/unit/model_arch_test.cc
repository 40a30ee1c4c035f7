// Qwen2-, Qwen3- and Llama 3.1-like models end to end: written as GGUF files
// and Hugging Face directories, read by the loaders, assembled, run by
// LlamaModel on the cpu backend, and compared with the float64 reference
// forward (tests/unit/reference_llama.h) fed the weights as generated, in
// the files' own row order. Then tp=2 against the unsharded model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>

#include "collectives/collectives.h"
#include "collectives/model_comm.h"
#include "runtime/formats/gguf_model.h"
#include "runtime/formats/hf_model.h"
#include "runtime/llama_model.h"
#include "runtime/model_assembly.h"
#include "sharding/source_shard.h"
#include "tests/unit/arch_models.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

using testing::ArchSpec;
using testing::ReferenceWeights;

// f32 kernels against float64 over widths of at most 64: the worst logit is
// off by 2e-7 of the logits' scale here (avx2); 5e-6 leaves room for other
// summation orders and is far below what any of the features changes
// (FeaturesChangeTheLogits: more than 100 times this).
constexpr double kTolerance = 5e-6;

ArchSpec qwen2_like() {
  ArchSpec s;
  s.arch = "qwen2";
  s.attention_bias = true;
  s.theta = 1000000.0;
  return s;
}

ArchSpec qwen3_like() {  // heads of 16 over a width of 32: q is 64 wide
  ArchSpec s;
  s.arch = "qwen3";
  s.head_dim = 16;
  s.qk_norm = true;
  s.theta = 1000000.0;
  return s;
}

// Llama 3.1's scaling with a short original context, so that all three
// bands (kept, divided by the factor, blended) fall on these 4 pairs and
// the blended pair turns measurably within a few positions.
ArchSpec llama31_like() {
  ArchSpec s;
  s.arch = "llama";
  s.theta = 10000.0;
  s.scaling = RopeScaling{8.0f, 1.0f, 4.0f, 128};
  return s;
}

Result<ModelSource> load_as(const ArchSpec& spec, const ReferenceWeights& w, bool gguf, const testing::TempDir& dir) {
  if (gguf) {
    const std::string path = dir.file("model.gguf");
    TANDEM_RETURN_IF_ERROR(testing::write_arch_gguf(spec, w, path));
    return load_gguf_source(path);
  }
  TANDEM_RETURN_IF_ERROR(testing::write_arch_hf_dir(spec, w, dir.path()));
  return load_hf_source(dir.path());
}

double scale_of(const std::vector<float>& logits) {
  double s = 0;
  for (float v : logits) s = std::max(s, static_cast<double>(std::fabs(v)));
  return s;
}

double worst_difference(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
  return worst / scale_of(got);
}

int argmax_of(const std::vector<double>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

// A prompt (chunked by max_batch 4), then greedy tokens one at a time; every
// step's logits are compared with the reference's, and every greedy choice
// (the argmax of the model's logits) must be the reference's. Returns the
// model's logits of every step.
std::vector<std::vector<float>> expect_matches_reference(LlamaModel& model, const ReferenceWeights& ref_w,
                                                         const std::string& what) {
  testing::ReferenceLlama ref(ref_w);
  const std::vector<int> prompt = {3, 17, 5, 39, 0, 22, 8};
  std::vector<std::vector<float>> steps;
  std::vector<double> want;
  for (size_t i = 0; i < prompt.size(); ++i) want = ref.forward(prompt[i], static_cast<int>(i));
  std::vector<float> logits(static_cast<size_t>(model.config().vocab_size));
  int pos = 0, next = 0;
  std::span<const int> input = prompt;
  for (int step = 0; step < 16; ++step) {
    const Status s = model.forward(input, pos, logits);
    EXPECT_TRUE(s.ok()) << what << ": " << s.to_string();
    EXPECT_LE(worst_difference(logits, want), kTolerance) << what << " step " << step;
    const int greedy = argmax_of(want);
    EXPECT_EQ(static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin()), greedy)
        << what << " step " << step;
    steps.push_back(logits);
    pos += static_cast<int>(input.size());
    next = greedy;
    input = std::span<const int>(&next, 1);
    want = ref.forward(greedy, pos);
  }
  return steps;
}

std::unique_ptr<LlamaModel> make_model(Backend& backend, LlamaWeights w, ModelComm* comm = nullptr) {
  LlamaModelOptions o;
  o.max_batch = 4;
  auto model = LlamaModel::create(backend, std::move(w), o, comm);
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  return model.ok() ? std::move(*model) : nullptr;
}

struct Case {
  const char* name;
  ArchSpec (*spec)();
  bool gguf;
};

class ModelArch : public ::testing::TestWithParam<Case> {};

TEST_P(ModelArch, LogitsAndGreedyTokensMatchTheFloat64Reference) {
  const Case& c = GetParam();
  const ArchSpec spec = c.spec();
  const ReferenceWeights ref = testing::random_arch_model(spec, 7);
  testing::TempDir dir;
  Result<ModelSource> source = load_as(spec, ref, c.gguf, dir);
  ASSERT_TRUE(source.ok()) << source.status().to_string();
  EXPECT_EQ(source->config.attention_bias, spec.attention_bias);
  EXPECT_EQ(source->config.qk_norm, spec.qk_norm);
  EXPECT_EQ(source->config.head_dim(), spec.head_dim != 0 ? spec.head_dim : spec.dim / spec.heads);
  EXPECT_EQ(source->config.rope_scaling.factor, spec.scaling.factor);
  Result<LlamaWeights> w = assemble_weights(*source, whole_model_part(source->config), AssemblyOptions{});
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  auto backend = make_backend(BackendOptions{BackendKind::kCpu, 2, 0});
  ASSERT_TRUE(backend.ok());
  std::unique_ptr<LlamaModel> model = make_model(**backend, std::move(*w));
  ASSERT_NE(model, nullptr);
  expect_matches_reference(*model, ref, c.name);
}

// The features are not decoration: the reference without each one differs
// from the runtime by far more than the tolerance, so the comparison above
// would notice a model that skipped it.
TEST(ModelArchReference, FeaturesChangeTheLogits) {
  for (ArchSpec (*make)() : {qwen2_like, qwen3_like, llama31_like}) {
    const ArchSpec spec = make();
    const ReferenceWeights full = testing::random_arch_model(spec, 7);
    ReferenceWeights without = full;
    without.bq.clear(), without.q_norm.clear(), without.scale_factor = 0;
    testing::ReferenceLlama a(full), b(without);
    double worst = 0;
    for (int pos = 0; pos < 8; ++pos) {
      const std::vector<double> x = a.forward(pos * 5 % spec.vocab, pos), y = b.forward(pos * 5 % spec.vocab, pos);
      std::vector<float> xf(x.begin(), x.end());
      worst = std::max(worst, worst_difference(xf, y));
    }
    EXPECT_GT(worst, 100 * kTolerance) << spec.arch;
  }
}

const Case kCases[] = {
    {"qwen2_gguf", qwen2_like, true},     {"qwen2_hf", qwen2_like, false},
    {"qwen3_gguf", qwen3_like, true},     {"qwen3_hf", qwen3_like, false},
    {"llama31_gguf", llama31_like, true}, {"llama31_hf", llama31_like, false},
};
INSTANTIATE_TEST_SUITE_P(Formats, ModelArch, ::testing::ValuesIn(kCases),
                         [](const auto& p) { return std::string(p.param.name); });

// tp=2 of each model, both ranks in this process: rank 0's logits equal the
// unsharded model's within 1e-5 of their scale (the all-reduces sum partial
// products in another order), and each rank holds what the plan counted.
TEST_P(ModelArch, TensorParallelTwoEqualsUnsharded) {
  const Case& c = GetParam();
  const ArchSpec spec = c.spec();
  const ReferenceWeights ref = testing::random_arch_model(spec, 11);
  testing::TempDir dir;
  Result<ModelSource> source = load_as(spec, ref, c.gguf, dir);
  ASSERT_TRUE(source.ok()) << source.status().to_string();
  const std::vector<int> prompt = {1, 2, 30, 4, 25, 6};
  const std::vector<int> more = {9, 33, 12};
  auto run = [&](LlamaModel& m, std::vector<std::vector<float>>& out) -> Status {
    std::vector<float> logits(m.leader() ? static_cast<size_t>(spec.vocab) : 0);
    TANDEM_RETURN_IF_ERROR(m.forward(prompt, 0, logits));
    out.push_back(logits);
    for (size_t i = 0; i < more.size(); ++i) {
      TANDEM_RETURN_IF_ERROR(m.forward(std::span<const int>(&more[i], 1), static_cast<int64_t>(prompt.size() + i), logits));
      out.push_back(logits);
    }
    return Status::Ok();
  };
  std::vector<std::vector<float>> whole;
  {
    auto w = assemble_weights(*source, whole_model_part(source->config), AssemblyOptions{});
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    auto backend = make_backend(BackendOptions{BackendKind::kCpu, 1, 0});
    auto model = make_model(**backend, std::move(*w));
    ASSERT_NE(model, nullptr);
    ASSERT_TRUE(run(*model, whole).ok());
  }
  auto plan = sharding::make_shard_plan(source->config, 2, 1, {});
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  auto comms = collectives::make_local_group(2);
  std::vector<std::vector<float>> sharded;
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      auto fail = [&](const Status& s) {
        ADD_FAILURE() << "rank " << r << ": " << s.to_string();
        comms[r]->abort(s.message());
      };
      AssemblyReport report;
      auto w = sharding::load_source_shard(*source, *plan, r, AssemblyOptions{}, &report);
      if (!w.ok()) return fail(w.status());
      EXPECT_EQ(report.mapped_bytes + report.converted_bytes, plan->ranks[r].weight_bytes) << "rank " << r;
      auto backend = make_backend(BackendOptions{BackendKind::kCpu, 1, 0});
      auto comm = collectives::make_model_comm(*comms[r], *comms[r], **backend, 2, 1, std::chrono::seconds(30));
      if (!comm.ok()) return fail(comm.status());
      auto model = LlamaModel::create(**backend, std::move(*w), LlamaModelOptions{0, 4}, comm->get());
      if (!model.ok()) return fail(model.status());
      std::vector<std::vector<float>> mine;
      if (Status s = run(**model, mine); !s.ok()) return fail(s);
      if (r == 0) sharded = std::move(mine);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(sharded.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    std::vector<double> want(whole[i].begin(), whole[i].end());
    EXPECT_LE(worst_difference(sharded[i], want), 1e-5) << c.name << " step " << i;
  }
}

// Mistral 7B v0.1's sliding window: the model runs it within the window (its
// default context) and refuses a longer context, saying why; within the
// window the logits are the reference's (full attention is the same there).
TEST(ModelArchWindow, SlidingWindowBoundsTheContext) {
  for (const bool gguf : {false, true}) {
    ArchSpec spec;
    spec.arch = "mistral";
    spec.sliding_window = 24;  // of 64 trained positions
    const ReferenceWeights ref = testing::random_arch_model(spec, 5);
    testing::TempDir dir;
    Result<ModelSource> source = load_as(spec, ref, gguf, dir);
    ASSERT_TRUE(source.ok()) << source.status().to_string();
    EXPECT_EQ(source->config.sliding_window, 24);
    auto backend = make_backend(BackendOptions{BackendKind::kCpu, 1, 0});
    ASSERT_TRUE(backend.ok());
    auto w = assemble_weights(*source, whole_model_part(source->config), AssemblyOptions{});
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    auto longer = LlamaModel::create(**backend, *w, LlamaModelOptions{32, 4});
    EXPECT_EQ(longer.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(longer.status().message().find("sliding attention window of 24"), std::string::npos)
        << longer.status().to_string();
    std::unique_ptr<LlamaModel> model = make_model(**backend, std::move(*w));
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(model->context(), 24);
    expect_matches_reference(*model, ref, gguf ? "mistral gguf" : "mistral hf");
  }
}

}  // namespace
}  // namespace tandem
