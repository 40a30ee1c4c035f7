// The scheduler against the real model: 32 concurrent greedy requests on the
// bundled stories260K give exactly the texts generate() gives one by one.
// The batched forward here is the simplest independent one: each sequence
// runs through its own contiguous LlamaModel (keyed by its first KV block,
// which no other live sequence holds). Once LlamaModel::forward_batch lands,
// the same test runs it against the paged pool.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "runtime/backend.h"
#include "runtime/generator.h"
#include "runtime/loaded_model.h"
#include "runtime/model_assembly.h"
#include "runtime/serving/scheduler.h"
#include "tests/unit/scheduler_test_util.h"
#include "tests/unit/test_paths.h"

namespace tandem::serving {
namespace {

constexpr int64_t kContext = 96;

class SchedulerModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto files = resolve_model_files(tandem::testing::bundled_model_dir());
    ASSERT_TRUE(files.ok()) << files.status().to_string();
    auto source = open_model_source(*files);
    ASSERT_TRUE(source.ok()) << source.status().to_string();
    source_ = std::make_unique<ModelSource>(std::move(source).value());
    auto tokenizer = load_model_tokenizer(*files, *source_);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
    tokenizer_ = std::make_unique<Tokenizer>(std::move(tokenizer).value());
    auto backend = make_backend(BackendOptions{BackendKind::kCpu, 1, 0});
    ASSERT_TRUE(backend.ok()) << backend.status().to_string();
    backend_ = std::move(backend).value();
  }

  std::unique_ptr<LlamaModel> new_model() {
    auto weights = assemble_weights(*source_, whole_model_part(source_->config), AssemblyOptions{});
    EXPECT_TRUE(weights.ok()) << weights.status().to_string();
    auto model = LlamaModel::create(*backend_, std::move(weights).value(), LlamaModelOptions{kContext, 64});
    EXPECT_TRUE(model.ok()) << model.status().to_string();
    return std::move(model).value();
  }

  // One contiguous model per live sequence, found by its first block.
  BatchForwardFn per_sequence_forward() {
    return [this](std::span<const SequenceStep> seqs, std::span<float> logits) -> Status {
      const size_t vocab = static_cast<size_t>(tokenizer_->vocab_size());
      std::vector<float> scratch(vocab);
      size_t row = 0;
      for (const SequenceStep& s : seqs) {
        std::unique_ptr<LlamaModel>& model = models_[s.block_table.front()];
        if (!model) model = new_model();
        std::span<float> out = s.want_logits ? logits.subspan(row++ * vocab, vocab) : std::span<float>(scratch);
        TANDEM_RETURN_IF_ERROR(model->forward(s.tokens, s.start_pos, out));
      }
      return Status::Ok();
    };
  }

  // The real thing: one model with a paged pool of `kv`'s geometry,
  // every sequence of a step in one LlamaModel::forward_batch.
  BatchForwardFn paged_forward(PagedKvConfig kv, int64_t per_step) {
    auto weights = assemble_weights(*source_, whole_model_part(source_->config), AssemblyOptions{});
    EXPECT_TRUE(weights.ok()) << weights.status().to_string();
    LlamaModelOptions options{kContext, per_step};
    options.kv_blocks = kv.num_blocks;
    options.kv_block_size = kv.block_size;
    options.contiguous_kv = false;
    auto model = LlamaModel::create(*backend_, std::move(weights).value(), options);
    EXPECT_TRUE(model.ok()) << model.status().to_string();
    paged_model_ = std::move(model).value();
    return [this](std::span<const SequenceStep> seqs, std::span<float> logits) {
      return paged_model_->forward_batch(seqs, logits);
    };
  }

  struct Output {
    std::vector<int> tokens;
    std::string text;
  };
  Output one_by_one(const ServingRequest& r) {
    if (!reference_model_) reference_model_ = new_model();
    GenerateRequest g;
    g.prompt_tokens = r.prompt_tokens;
    g.max_new_tokens = r.max_tokens;
    g.echo_prompt = false;
    g.sampler = r.sampler;
    Output out;
    auto forward = [this](std::span<const int> t, int64_t pos, std::span<float> logits) {
      return reference_model_->forward(t, pos, logits);
    };
    auto stats = generate(forward, kContext, *tokenizer_, g, [&](int token, std::string_view text) {
      if (token >= 0) out.tokens.push_back(token);
      out.text += text;
      return true;
    });
    EXPECT_TRUE(stats.ok()) << stats.status().to_string();
    return out;
  }

  std::vector<ServingRequest> requests() const {
    const char* openings[] = {"Once upon a time", "Lily and Ben", "The little dog", "One day, a girl",
                              "Tom had a big", "The sun was", "Mom said", "There was a tree"};
    const char* endings[] = {"", " that", " and the", " in the park with a"};
    std::vector<ServingRequest> out;
    for (int i = 0; i < 32; ++i) {
      ServingRequest r;
      r.prompt_tokens = tokenizer_->encode(std::string(openings[i % 8]) + endings[i / 8], true, false);
      r.max_tokens = 30 + (i * 7) % 50;
      out.push_back(std::move(r));
    }
    return out;
  }

  // `argmax` (paged only): greedy steps through forward_batch_argmax.
  void expect_same_as_one_by_one(PagedKvConfig kv, int64_t per_step, bool expect_preemption, bool paged = false,
                                 bool argmax = false) {
    SchedulerLimits limits{per_step, 32, 64, kContext};
    BatchForwardFn forward = paged ? paged_forward(kv, per_step) : per_sequence_forward();
    BatchArgmaxFn greedy;
    if (argmax) {
      greedy = [this](std::span<const SequenceStep> seqs, std::span<int32_t> tokens) {
        return paged_model_->forward_batch_argmax(seqs, tokens);
      };
    }
    auto s = Scheduler::create(forward, tokenizer_->vocab_size(), *tokenizer_, kv, limits, greedy);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    const std::vector<ServingRequest> all = requests();
    std::vector<std::unique_ptr<testing::Recorder>> rec;
    for (const ServingRequest& r : all) {
      rec.push_back(std::make_unique<testing::Recorder>());
      ASSERT_TRUE((*s)->submit(r, rec.back()->sink()).ok());
    }
    ASSERT_TRUE(testing::drain(**s));
    for (size_t i = 0; i < all.size(); ++i) {
      const Output ref = one_by_one(all[i]);
      EXPECT_FALSE(ref.text.empty());
      EXPECT_EQ(rec[i]->check_sequence(), "");
      EXPECT_EQ(rec[i]->tokens(), ref.tokens) << "request " << i;
      EXPECT_EQ(rec[i]->text(), ref.text) << "request " << i;
    }
    const EngineMetrics m = (*s)->metrics();
    EXPECT_EQ(m.kv_blocks_used, 0);
    EXPECT_EQ(m.preemptions > 0, expect_preemption) << m.preemptions;
    EXPECT_LT(m.steps, 400);  // batched: far fewer forwards than the ~1800 tokens
    EXPECT_EQ(m.argmax_steps, argmax ? m.steps : 0);  // every request is greedy
  }

  std::unique_ptr<ModelSource> source_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Backend> backend_;
  std::map<int32_t, std::unique_ptr<LlamaModel>> models_;
  std::unique_ptr<LlamaModel> reference_model_;
  std::unique_ptr<LlamaModel> paged_model_;
};

TEST_F(SchedulerModelTest, ThirtyTwoConcurrentGreedyRequestsMatchGenerateOneByOne) {
  expect_same_as_one_by_one({16, 256}, 64, /*expect_preemption=*/false);
}

TEST_F(SchedulerModelTest, PreemptionUnderATinyPoolKeepsTheTexts) {
  expect_same_as_one_by_one({8, 40}, 64, /*expect_preemption=*/true);
}

// The same through the real batched forward over one paged pool. Its
// logits differ from the one-sequence forward's by rounding only (~1e-6 of
// their scale: the matmul sums many tokens in another order), which flips
// no greedy choice of these 32 requests.
TEST_F(SchedulerModelTest, ThroughForwardBatchTheTextsAreGeneratesOneByOne) {
  expect_same_as_one_by_one({16, 256}, 64, /*expect_preemption=*/false, /*paged=*/true);
}

TEST_F(SchedulerModelTest, ThroughForwardBatchPreemptionKeepsTheTexts) {
  expect_same_as_one_by_one({8, 40}, 64, /*expect_preemption=*/true, /*paged=*/true);
}

// Greedy steps take the model's own argmax (the backend's, over the batch's
// logits rows): the same tokens as sampling the logits on the host.
TEST_F(SchedulerModelTest, ThroughForwardBatchArgmaxTheTextsAreGeneratesOneByOne) {
  expect_same_as_one_by_one({16, 256}, 64, /*expect_preemption=*/false, /*paged=*/true, /*argmax=*/true);
  expect_same_as_one_by_one({8, 40}, 64, /*expect_preemption=*/true, /*paged=*/true, /*argmax=*/true);
}

}  // namespace
}  // namespace tandem::serving
