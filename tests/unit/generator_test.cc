// The generation loop's request options against the published greedy story:
// stop strings (never streamed, even in part), a token budget, token-id
// prompts.
#include <gtest/gtest.h>

#include "runtime/generator.h"
#include "runtime/loaded_model.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

class Generator : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = load_model(testing::bundled_model_dir(), LoadOptions{});
    ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
    loaded_ = std::make_unique<LoadedModel>(std::move(loaded).value());
  }

  struct Output {
    std::string text;
    std::vector<std::string> pieces;
    std::vector<int> tokens;
    GenerateStats stats;
  };

  Output run(GenerateRequest request) {
    request.sampler.temperature = 0;
    Output out;
    auto forward = [this](std::span<const int> t, int64_t pos, std::span<float> logits) {
      return loaded_->model->forward(t, pos, logits);
    };
    auto stats = generate(forward, loaded_->model->context(), loaded_->tokenizer, request,
                          [&](int token, std::string_view text) {
                            out.text += text;
                            out.pieces.emplace_back(text);
                            out.tokens.push_back(token);
                            return true;
                          });
    EXPECT_TRUE(stats.ok()) << stats.status().to_string();
    if (stats.ok()) out.stats = *stats;
    return out;
  }

  std::unique_ptr<LoadedModel> loaded_;
};

TEST_F(Generator, StopStringEndsTheTextBeforeIt) {
  const std::string story = testing::published_story();
  GenerateRequest request;
  request.stop = {"zzz-never", "little girl"};
  const Output out = run(request);
  EXPECT_EQ(out.stats.stop_reason, "stop");
  EXPECT_EQ(out.text, story.substr(0, story.find("little girl")));
  // "little" and " girl" are separate tokens: the held-back "little" never
  // reached the client.
  for (const std::string& piece : out.pieces) EXPECT_EQ(piece.find("little"), std::string::npos) << piece;
}

TEST_F(Generator, HeldBackTextThatIsNoStopStringIsStreamedAtTheEnd) {
  GenerateRequest request;
  request.steps = 20;
  const Output plain = run(request);
  // A stop string the whole text is a beginning of: everything is held back,
  // then streamed when generation ends without it.
  request.stop = {plain.text + " and then"};
  const Output out = run(request);
  EXPECT_EQ(out.stats.stop_reason, "steps");
  EXPECT_EQ(out.text, plain.text);
  ASSERT_FALSE(out.tokens.empty());
  EXPECT_EQ(out.tokens.back(), -1);  // the flushed tail belongs to no single token
  EXPECT_EQ(out.pieces.back(), plain.text);
}

TEST_F(Generator, MaxNewTokensCountsOnlyGeneratedTokens) {
  GenerateRequest request;
  request.prompt = "Once upon a time";
  request.max_new_tokens = 10;
  request.echo_prompt = false;
  const Output out = run(request);
  EXPECT_EQ(out.stats.generated_tokens, 10);
  EXPECT_EQ(out.stats.stop_reason, "steps");
  EXPECT_EQ(out.tokens.size(), 10u);
}

TEST_F(Generator, TokenPromptsContinueLikeTextPrompts) {
  GenerateRequest text;
  text.prompt = "One day, a cat";
  text.max_new_tokens = 24;
  text.echo_prompt = false;
  GenerateRequest ids = text;
  ids.prompt.clear();
  ids.prompt_tokens = loaded_->tokenizer.encode(text.prompt, /*add_bos=*/true, /*add_eos=*/false);
  EXPECT_EQ(run(text).text, run(ids).text);
  EXPECT_EQ(run(ids).stats.prompt_tokens, static_cast<int64_t>(ids.prompt_tokens.size()));
}

TEST_F(Generator, BudgetsBeyondTheContextStopAtTheContext) {
  GenerateRequest request;
  request.max_new_tokens = 100000;
  const Output out = run(request);
  EXPECT_LE(out.stats.prompt_tokens + out.stats.generated_tokens, loaded_->model->context() + 1);
}

TEST(GeneratorDescribe, GivesThePromptRateOnlyForAPromptBeyondBos) {
  GenerateStats stats;
  stats.prompt_tokens = 128;
  stats.prefill_seconds = 0.25;
  stats.generated_tokens = 64;
  stats.decode_seconds = 1.6;
  stats.stop_reason = "steps";
  EXPECT_EQ(describe(stats, 7), "128 prompt tokens (512.0 tok/s), 64 generated (steps), 40.0 tok/s decode, seed 7");
  stats.prompt_tokens = 1;  // BOS alone: its forward is a decode step
  EXPECT_EQ(describe(stats, 7), "1 prompt tokens, 64 generated (steps), 40.0 tok/s decode, seed 7");
  stats.prompt_tokens = 5;
  stats.prefill_seconds = 0;  // nothing measured: no rate rather than inf
  EXPECT_EQ(describe(stats, 7), "5 prompt tokens, 64 generated (steps), 40.0 tok/s decode, seed 7");
}

}  // namespace
}  // namespace tandem
