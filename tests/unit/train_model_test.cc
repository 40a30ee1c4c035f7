// TrainModel at tp=1: its gradients against central differences of its own
// loss, its loss against the inference model running the exported
// checkpoint, the order in which it finishes gradients, its refusals, and
// that plain SGD with its gradients learns.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "runtime/backend.h"
#include "runtime/llama2c_loader.h"
#include "runtime/llama_model.h"
#include "runtime/thread_pool.h"
#include "runtime/train/train_model.h"
#include "tests/unit/test_paths.h"
#include "tests/unit/train_model_test_util.h"

namespace tandem::train {
namespace {

using testing::random_tokens;
using testing::tiny_gqa_shape;

constexpr int64_t kBatch = 2;

std::unique_ptr<TrainModel> make_model(const TrainShape& shape, int64_t max_batch = kBatch, ThreadPool* pool = nullptr) {
  auto model = TrainModel::create(shape, {}, nullptr, pool, max_batch);
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  return model.ok() ? std::move(model).value() : nullptr;
}

struct Batch {
  std::vector<int> inputs, targets;
};

Batch random_batch(const TrainShape& s, int64_t batch, uint32_t seed) {
  const size_t n = static_cast<size_t>(batch * s.seq_len);
  return {random_tokens(n, s.vocab_size, seed), random_tokens(n, s.vocab_size, seed + 1)};
}

double loss_of(TrainModel& m, const Batch& b) {
  auto loss = m.loss(b.inputs, b.targets, kBatch);
  EXPECT_TRUE(loss.ok()) << loss.status().to_string();
  return loss.ok() ? *loss : NAN;
}

// The derivative of the f32 loss along a unit direction confined to one
// tensor, by central differences, against grads . direction. Central
// differences at h = 1e-2 err by ~h^2 f'''/6, which along the gradient
// itself reached 2e-3 of |grad| here; Richardson's (4 D(h/2) - D(h)) / 3
// cancels that term (what remains is O(h^4)). The loss's f32 rounding
// (~1e-7 absolute) divided by h adds ~1e-5. Tolerance: 5e-4 of the tensor's
// gradient norm (the largest directional derivative possible); the errors
// seen are below 5e-5 of it.
TEST(TrainModel, GradientsMatchCentralDifferencesTensorByTensor) {
  const TrainShape shape = tiny_gqa_shape();
  auto model = make_model(shape);
  ASSERT_NE(model, nullptr);
  testing::randomize_params(*model, 7);
  const Batch batch = random_batch(shape, kBatch, 11);
  model->zero_grads();
  ASSERT_TRUE(model->forward_backward(batch.inputs, batch.targets, kBatch, 1.0f).ok());
  const std::vector<float> grads(model->grads().begin(), model->grads().end());

  std::mt19937 rng(3);
  std::normal_distribution<double> normal(0.0, 1.0);
  const double h = 1e-2;
  float* params = model->params().data();
  for (const ParamTensor& t : model->tensors()) {
    const float* g = grads.data() + t.offset;
    double g_norm = 0;
    for (int64_t i = 0; i < t.numel(); ++i) g_norm += static_cast<double>(g[i]) * g[i];
    g_norm = std::sqrt(g_norm);
    ASSERT_GT(g_norm, 1e-4) << t.name << " has no gradient to check";
    // Along the gradient itself (any error in it shows), then a random direction.
    for (int trial = 0; trial < 2; ++trial) {
      std::vector<double> dir(static_cast<size_t>(t.numel()));
      double norm = 0;
      for (int64_t i = 0; i < t.numel(); ++i) {
        dir[i] = trial == 0 ? g[i] : normal(rng);
        norm += dir[i] * dir[i];
      }
      double analytic = 0;
      for (int64_t i = 0; i < t.numel(); ++i) {
        dir[i] /= std::sqrt(norm);
        analytic += g[i] * dir[i];
      }
      const std::vector<float> saved(params + t.offset, params + t.offset + t.numel());
      auto shifted_loss = [&](double step) {
        for (int64_t i = 0; i < t.numel(); ++i) params[t.offset + i] = static_cast<float>(saved[i] + step * dir[i]);
        return loss_of(*model, batch);
      };
      auto central = [&](double width) { return (shifted_loss(width) - shifted_loss(-width)) / (2 * width); };
      const double numeric = (4 * central(h / 2) - central(h)) / 3;
      std::copy(saved.begin(), saved.end(), params + t.offset);
      EXPECT_NEAR(numeric, analytic, 5e-4 * g_norm)
          << t.name << (trial == 0 ? " along its gradient" : " along a random direction") << ", |grad| " << g_norm;
    }
  }
}

// The exported checkpoint, run token by token by the inference model, gives
// logits whose cross-entropy (in double) is the training loss.
TEST(TrainModel, LossEqualsInferenceCrossEntropyOfTheExportedModel) {
  const TrainShape shape = tiny_gqa_shape();
  auto model = make_model(shape);
  ASSERT_NE(model, nullptr);
  testing::randomize_params(*model, 5);
  const Batch batch = random_batch(shape, kBatch, 21);
  auto train_loss = model->loss(batch.inputs, batch.targets, kBatch);
  ASSERT_TRUE(train_loss.ok()) << train_loss.status().to_string();

  tandem::testing::TempDir dir;
  const std::string path = dir.file("trained.bin");
  ASSERT_TRUE(export_llama2c(shape, model->params(), path).ok());
  auto weights = load_llama2c(path);
  ASSERT_TRUE(weights.ok()) << weights.status().to_string();
  EXPECT_FALSE(weights->config.shared_classifier);
  EXPECT_EQ(weights->config.max_seq_len, shape.seq_len);
  auto backend = make_backend({.kind = BackendKind::kCpu, .threads = 1});
  ASSERT_TRUE(backend.ok());
  auto llama = LlamaModel::create(**backend, std::move(weights).value(), {});
  ASSERT_TRUE(llama.ok()) << llama.status().to_string();

  double total = 0;
  std::vector<float> logits(static_cast<size_t>(shape.vocab_size));
  for (int64_t b = 0; b < kBatch; ++b) {
    for (int64_t t = 0; t < shape.seq_len; ++t) {
      const size_t i = static_cast<size_t>(b * shape.seq_len + t);
      ASSERT_TRUE((*llama)->forward(std::span<const int>(&batch.inputs[i], 1), t, logits).ok());
      double max = logits[0], sum = 0;
      for (float l : logits) max = std::max<double>(max, l);
      for (float l : logits) sum += std::exp(l - max);
      total += std::log(sum) + max - logits[static_cast<size_t>(batch.targets[i])];
    }
  }
  const double inference_loss = total / static_cast<double>(kBatch * shape.seq_len);
  EXPECT_GT(inference_loss, 0.5);  // far from a degenerate, trivially equal loss
  EXPECT_NEAR(*train_loss, inference_loss, 1e-5 * inference_loss);
}

// Each on_grads_final(offset) promises grads[offset, end) are final: snapshots
// taken in the callback equal the gradients after the backward returns.
TEST(TrainModel, GradsFinalOffsetsDescendToZeroAndHold) {
  const TrainShape shape = tiny_gqa_shape();
  auto model = make_model(shape);
  ASSERT_NE(model, nullptr);
  testing::randomize_params(*model, 9);
  const Batch batch = random_batch(shape, kBatch, 31);
  model->zero_grads();
  std::vector<int64_t> offsets;
  std::vector<std::vector<float>> snapshots;
  auto grads = model->grads();
  auto on_final = [&](int64_t offset) {
    offsets.push_back(offset);
    snapshots.emplace_back(grads.begin() + offset, grads.end());
  };
  ASSERT_TRUE(model->forward_backward(batch.inputs, batch.targets, kBatch, 1.0f, on_final).ok());
  ASSERT_EQ(offsets.size(), static_cast<size_t>(shape.n_layers + 2));  // the head, each layer, the embedding
  EXPECT_EQ(offsets.back(), 0);
  for (size_t i = 1; i < offsets.size(); ++i) EXPECT_LT(offsets[i], offsets[i - 1]);
  for (size_t i = 0; i < offsets.size(); ++i) {
    const std::vector<float> now(grads.begin() + offsets[i], grads.end());
    EXPECT_TRUE(now == snapshots[i]) << "grads from offset " << offsets[i] << " changed after it was final";
  }
  // Every call marks a layer boundary: a tensor of that layer starts there.
  for (int64_t offset : offsets) {
    bool starts_tensor = false;
    for (const ParamTensor& t : model->tensors()) starts_tensor |= t.offset == offset;
    EXPECT_TRUE(starts_tensor) << offset;
  }
}

void expect_invalid(const Status& s, const std::string& cause) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find(cause), std::string::npos) << s.message();
}

TEST(TrainModel, RefusesWhatItCannotTrain) {
  const TrainShape shape = tiny_gqa_shape();
  // tp=4 does not divide the 2 KV heads; no comm is needed to find that out.
  auto split = TrainModel::create(shape, {4, 0}, nullptr, nullptr, 1);
  ASSERT_FALSE(split.ok());
  expect_invalid(split.status(), "n_kv_heads");
  TrainShape odd = shape;
  odd.n_kv_heads = 3;
  expect_invalid(TrainModel::create(odd, {}, nullptr, nullptr, 1).status(), "n_kv_heads");

  auto model = make_model(shape);
  ASSERT_NE(model, nullptr);
  model->init(1);
  Batch batch = random_batch(shape, kBatch, 41);
  batch.inputs[3] = static_cast<int>(shape.vocab_size);
  expect_invalid(model->forward_backward(batch.inputs, batch.targets, kBatch, 1.0f).status(), "token id 11");
  batch.inputs[3] = 0;
  batch.targets[7] = -1;
  expect_invalid(model->loss(batch.inputs, batch.targets, kBatch).status(), "token id -1");
  batch.targets[7] = 0;

  const Batch three = random_batch(shape, 3, 43);
  expect_invalid(model->forward_backward(three.inputs, three.targets, 3, 1.0f).status(), "max_batch");
  expect_invalid(model->forward_backward(three.inputs, three.targets, kBatch, 1.0f).status(), "needs 10");
  EXPECT_TRUE(model->forward_backward(batch.inputs, batch.targets, kBatch, 1.0f).ok());

  // Exports that would not round-trip: the wrong size, a RoPE base llama2.c cannot record.
  tandem::testing::TempDir dir;
  const std::vector<float> full(model->params().begin(), model->params().end());
  expect_invalid(export_llama2c(shape, std::span<const float>(full).first(full.size() - 1), dir.file("a.bin")),
                 "parameters given");
  TrainShape theta = shape;
  theta.rope_theta = 500000.0f;
  expect_invalid(export_llama2c(theta, full, dir.file("b.bin")), "rope_theta");
}

// Plain SGD on one fixed batch: the gradients point downhill and the model
// can fit ten tokens.
TEST(TrainModel, FiftySgdStepsOnOneBatchHalveTheLoss) {
  const TrainShape shape = tiny_gqa_shape();
  auto model = make_model(shape);
  ASSERT_NE(model, nullptr);
  model->init(1234);
  const Batch batch = random_batch(shape, kBatch, 51);
  double first = 0, last = 0;
  for (int step = 0; step < 50; ++step) {
    model->zero_grads();
    auto loss = model->forward_backward(batch.inputs, batch.targets, kBatch, 1.0f);
    ASSERT_TRUE(loss.ok()) << loss.status().to_string();
    if (step == 0) first = *loss;
    last = *loss;
    auto p = model->params();
    auto g = model->grads();
    for (size_t i = 0; i < p.size(); ++i) p[i] -= 1.0f * g[i];
  }
  EXPECT_NEAR(first, std::log(static_cast<double>(shape.vocab_size)), 0.05);  // the init predicts ~uniformly
  EXPECT_LT(last, 0.5 * first) << "first " << first << " last " << last;
}

// What micro-batching relies on: grads accumulate across calls, each scaled
// by its grad_scale (two calls at 0.5 give one call at 1.0).
TEST(TrainModel, GradsAccumulateScaledByGradScale) {
  const TrainShape shape = tiny_gqa_shape();
  auto model = make_model(shape);
  ASSERT_NE(model, nullptr);
  testing::randomize_params(*model, 13);
  const Batch batch = random_batch(shape, kBatch, 71);
  model->zero_grads();
  ASSERT_TRUE(model->forward_backward(batch.inputs, batch.targets, kBatch, 1.0f).ok());
  const std::vector<float> once(model->grads().begin(), model->grads().end());
  model->zero_grads();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(model->forward_backward(batch.inputs, batch.targets, kBatch, 0.5f).ok());
  const float scale = testing::max_abs(once.data(), static_cast<int64_t>(once.size()));
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(model->grads()[i], once[i], 1e-6f * scale) << i;
}

// The ops promise results independent of the thread count; the model keeps it.
TEST(TrainModel, ThreadsDoNotChangeTheGradients) {
  const TrainShape shape = tiny_gqa_shape();
  ThreadPool pool(2);
  auto one = make_model(shape);
  auto two = make_model(shape, kBatch, &pool);
  ASSERT_TRUE(one && two);
  one->init(77);
  two->init(77);
  const Batch batch = random_batch(shape, kBatch, 61);
  one->zero_grads();
  two->zero_grads();
  auto a = one->forward_backward(batch.inputs, batch.targets, kBatch, 1.0f);
  auto b = two->forward_backward(batch.inputs, batch.targets, kBatch, 1.0f);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_TRUE(std::equal(one->grads().begin(), one->grads().end(), two->grads().begin()));
}

}  // namespace
}  // namespace tandem::train
