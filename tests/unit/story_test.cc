// The product's first promise: the bundled model tells the published greedy
// story, byte for byte, with every kernel set and thread count.
#include <gtest/gtest.h>

#include "runtime/cpu/kernels.h"
#include "runtime/generator.h"
#include "runtime/loaded_model.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

std::string greedy_story(int threads, int64_t steps = 256) {
  LoadOptions options;
  options.backend.threads = threads;
  auto loaded = load_model(testing::bundled_model_dir(), options);
  EXPECT_TRUE(loaded.ok()) << loaded.status().to_string();
  if (!loaded.ok()) return {};
  GenerateRequest request;
  request.steps = steps;
  request.sampler.temperature = 0;
  std::string text;
  auto stats = generate(*loaded->model, loaded->tokenizer, request, [&](std::string_view piece) {
    text += piece;
    return true;
  });
  EXPECT_TRUE(stats.ok()) << stats.status().to_string();
  return text;
}

struct StoryCase {
  cpu::Isa isa;
  int threads;
  friend void PrintTo(const StoryCase& c, std::ostream* os) {
    *os << cpu::isa_name(c.isa) << ", " << c.threads << " threads";
  }
};

class PublishedStory : public ::testing::TestWithParam<StoryCase> {};

TEST_P(PublishedStory, GreedyStoryEqualsThePublishedText) {
  if (!cpu::isa_supported(GetParam().isa))
    GTEST_SKIP() << cpu::isa_name(GetParam().isa) << " is not supported on this CPU";
  testing::ScopedIsa isa(GetParam().isa);
  ASSERT_TRUE(isa.ok());
  EXPECT_EQ(greedy_story(GetParam().threads), testing::published_story());
}

INSTANTIATE_TEST_SUITE_P(Kernels, PublishedStory,
                         ::testing::Values(StoryCase{cpu::Isa::kScalar, 1}, StoryCase{cpu::Isa::kAvx2, 1},
                                           StoryCase{cpu::Isa::kAvx2, 2}, StoryCase{cpu::Isa::kAvx512, 1},
                                           StoryCase{cpu::Isa::kAvx512, 2}, StoryCase{cpu::Isa::kNeon, 1},
                                           StoryCase{cpu::Isa::kNeon, 2}),
                         [](const auto& param_info) {
                           return std::string(cpu::isa_name(param_info.param.isa)) + "_" +
                                  std::to_string(param_info.param.threads) + "threads";
                         });

TEST(Generate, StepsCountPrintedTokensAsLlama2c) {
  // 16 steps from BOS print 16 tokens: a prefix of the published story.
  const std::string story = greedy_story(1, 16);
  EXPECT_FALSE(story.empty());
  EXPECT_EQ(testing::published_story().rfind(story, 0), 0u) << story;
}

TEST(Generate, RejectsStepsBeyondTheContextAndLongPrompts) {
  auto loaded = load_model(testing::bundled_model_dir(), {});
  ASSERT_TRUE(loaded.ok());
  GenerateRequest request;
  request.steps = 513;
  auto sink = [](std::string_view) { return true; };
  auto stats = generate(*loaded->model, loaded->tokenizer, request, sink);
  EXPECT_EQ(stats.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(stats.status().message().find("steps=513"), std::string::npos);
  request.steps = 3;
  request.prompt = "Once upon a time there was";
  stats = generate(*loaded->model, loaded->tokenizer, request, sink);
  EXPECT_EQ(stats.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(stats.status().message().find("prompt"), std::string::npos);
}

TEST(Generate, SeededSamplingIsRepeatableAndCancellable) {
  auto loaded = load_model(testing::bundled_model_dir(), {});
  ASSERT_TRUE(loaded.ok());
  GenerateRequest request;
  request.steps = 64;
  request.sampler = {0.8f, 0.9f, 40, 1234};
  auto run = [&](int limit) {
    std::string text;
    int pieces = 0;
    auto stats = generate(*loaded->model, loaded->tokenizer, request, [&](std::string_view p) {
      text += p;
      return ++pieces < limit;
    });
    EXPECT_TRUE(stats.ok());
    return std::make_pair(text, stats.ok() ? stats->stop_reason : "");
  };
  const auto a = run(1000), b = run(1000);
  EXPECT_EQ(a.first, b.first);
  EXPECT_NE(a.first, testing::published_story().substr(0, a.first.size()));  // it did sample
  const auto cancelled = run(5);
  EXPECT_EQ(cancelled.second, "cancelled");
  EXPECT_EQ(a.first.rfind(cancelled.first, 0), 0u);
}

}  // namespace
}  // namespace tandem
