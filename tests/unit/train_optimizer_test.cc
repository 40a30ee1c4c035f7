// AdamW against torch.optim.AdamW's formulas written out here in double,
// and against the closed form a constant gradient gives; the learning-rate
// schedule against nanoGPT's get_lr; clipping against torch's
// clip_grad_norm_ factor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <vector>

#include "runtime/train/optimizer.h"
#include "tests/unit/train_test_util.h"

namespace tandem::train {
namespace {

using testing::random_vector;

// torch.optim.AdamW's step for one element (amsgrad off), in double.
struct ReferenceAdamW {
  double p, m = 0.0, v = 0.0;
  void step(double g, double lr, const AdamWConfig& c, int64_t t, bool decay) {
    if (decay) p *= 1.0 - lr * c.weight_decay;
    m = c.beta1 * m + (1.0 - c.beta1) * g;
    v = c.beta2 * v + (1.0 - c.beta2) * g * g;
    const double bias_correction1 = 1.0 - std::pow(c.beta1, static_cast<double>(t));
    const double bias_correction2 = 1.0 - std::pow(c.beta2, static_cast<double>(t));
    p -= lr / bias_correction1 * m / (std::sqrt(v) / std::sqrt(bias_correction2) + c.eps);
  }
};

// Float state vs the double reference: each step rounds p, m and v to float
// (relative 6e-8); over five steps of size ~lr that stays far below 1e-6.
constexpr double kAdamTol = 1e-6;

void expect_adamw_follows_reference(bool decay) {
  std::mt19937 rng(decay ? 21 : 22);
  const int64_t n = 37;
  const AdamWConfig config{.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
  const std::vector<double> initial = random_vector(n, rng);
  std::vector<ReferenceAdamW> reference;
  for (double p : initial) reference.push_back({.p = p});
  std::vector<float> params(initial.begin(), initial.end()), m(n, 0.0f), v(n, 0.0f);
  for (int64_t step = 1; step <= 5; ++step) {
    // Gradients from 1e-4 to 1, some elements exactly 0, a different lr per step.
    std::vector<float> grads = testing::to_float(random_vector(n, rng));
    for (int64_t i = 0; i < n; ++i)
      grads[i] *= static_cast<float>(std::pow(10.0, -static_cast<double>(i % 5)));
    grads[3] = 0.0f;
    const double lr = 1e-2 / static_cast<double>(step);
    adamw_update(params, grads, m, v, lr, config, step, decay);
    for (int64_t i = 0; i < n; ++i) reference[i].step(grads[i], lr, config, step, decay);
  }
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(params[i], reference[i].p, kAdamTol)
        << "param " << i << (decay ? " with" : " without") << " decay";
    EXPECT_NEAR(m[i], reference[i].m, kAdamTol * std::fabs(reference[i].m) + 1e-12) << "m " << i;
    EXPECT_NEAR(v[i], reference[i].v, kAdamTol * std::fabs(reference[i].v) + 1e-15) << "v " << i;
  }
}

TEST(AdamW, FollowsTorchWithDecay) { expect_adamw_follows_reference(true); }
TEST(AdamW, FollowsTorchWithoutDecay) { expect_adamw_follows_reference(false); }

// With a constant gradient g the bias corrections make m_hat = g and
// v_hat = g^2 at every step, so each step moves p by lr * g / (|g| + eps)
// after the decay: known values independent of the moment arithmetic.
TEST(AdamW, ConstantGradientStepsByLrTimesItsSign) {
  const AdamWConfig config{.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
  const double lr = 0.01;
  const std::vector<float> grads = {0.5f, -2.0f, 1e-3f};
  for (const bool decay : {false, true}) {
    std::vector<float> params = {1.0f, 1.0f, -0.5f}, m(3, 0.0f), v(3, 0.0f);
    std::vector<double> expected(params.begin(), params.end());
    for (int64_t step = 1; step <= 4; ++step) {
      adamw_update(params, grads, m, v, lr, config, step, decay);
      for (size_t i = 0; i < expected.size(); ++i) {
        if (decay) expected[i] *= 1.0 - lr * config.weight_decay;
        expected[i] -= lr * grads[i] / (std::fabs(grads[i]) + config.eps);
      }
    }
    for (size_t i = 0; i < expected.size(); ++i)
      EXPECT_NEAR(params[i], expected[i], 1e-6) << i << " " << decay;
  }
}

TEST(AdamW, SumOfSquaresAccumulatesInDouble) {
  EXPECT_EQ(sum_of_squares(std::vector<float>{3.0f, 4.0f}), 25.0);
  // 1e8 then a thousand 1s: a float sum stays at 1e8 (its spacing there is 8).
  std::vector<float> g(1001, 1.0f);
  g[0] = 1e4f;
  EXPECT_EQ(sum_of_squares(g), 1e8 + 1000.0);
  EXPECT_EQ(sum_of_squares(std::vector<float>{}), 0.0);
}

TEST(ClipFactor, IsTorchsClipGradNormFactor) {
  EXPECT_DOUBLE_EQ(clip_factor(4.0, 1.0), 1.0 / (4.0 + 1e-6));
  EXPECT_DOUBLE_EQ(clip_factor(1.5, 1.0), 1.0 / (1.5 + 1e-6));
  EXPECT_EQ(clip_factor(0.5, 1.0), 1.0);
  EXPECT_EQ(clip_factor(0.0, 1.0), 1.0);
  EXPECT_LT(clip_factor(1.0, 1.0), 1.0);  // torch's +1e-6: a norm at the limit is scaled a hair
  EXPECT_GT(clip_factor(1.0, 1.0), 1.0 - 2e-6);
  EXPECT_EQ(clip_factor(1e9, 0.0), 1.0);  // max_norm <= 0 turns clipping off
  EXPECT_EQ(clip_factor(1e9, -1.0), 1.0);
  EXPECT_TRUE(std::isnan(clip_factor(INFINITY, 1.0)));
  EXPECT_TRUE(std::isnan(clip_factor(NAN, 1.0)));
}

// nanoGPT's get_lr, written out in double.
double nanogpt_lr(int64_t it, const LrSchedule& s) {
  if (it < s.warmup_steps)
    return s.max_lr * static_cast<double>(it + 1) / static_cast<double>(s.warmup_steps + 1);
  if (it > s.decay_steps) return s.min_lr;
  const double ratio =
      static_cast<double>(it - s.warmup_steps) / static_cast<double>(s.decay_steps - s.warmup_steps);
  return s.min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * ratio)) * (s.max_lr - s.min_lr);
}

TEST(LrSchedule, FollowsNanoGptGetLr) {
  const LrSchedule s{.max_lr = 1e-3, .min_lr = 1e-4, .warmup_steps = 100, .decay_steps = 2000};
  // Warm-up: linear from max/(w+1), reaching max*w/(w+1) at its last step.
  EXPECT_DOUBLE_EQ(s.at(0), 1e-3 / 101.0);
  EXPECT_DOUBLE_EQ(s.at(49), 1e-3 * 50.0 / 101.0);
  EXPECT_DOUBLE_EQ(s.at(99), 1e-3 * 100.0 / 101.0);
  // The cosine starts at max, is halfway at the midpoint, ends at min.
  EXPECT_DOUBLE_EQ(s.at(100), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(1050), 1e-4 + 0.5 * (1e-3 - 1e-4));
  EXPECT_NEAR(s.at(2000), 1e-4, 1e-18);
  EXPECT_EQ(s.at(2001), 1e-4);
  EXPECT_EQ(s.at(1000000), 1e-4);
  for (int64_t it = 0; it <= 2100; ++it) EXPECT_DOUBLE_EQ(s.at(it), nanogpt_lr(it, s)) << it;
}

TEST(LrSchedule, WithoutRoomForTheCosineGoesToMinAfterWarmup) {
  const LrSchedule none{.max_lr = 1e-3, .min_lr = 1e-4, .warmup_steps = 0, .decay_steps = 0};
  EXPECT_EQ(none.at(0), 1e-4);
  const LrSchedule equal{.max_lr = 1e-3, .min_lr = 1e-4, .warmup_steps = 10, .decay_steps = 10};
  EXPECT_DOUBLE_EQ(equal.at(9), 1e-3 * 10.0 / 11.0);
  EXPECT_EQ(equal.at(10), 1e-4);
}

}  // namespace
}  // namespace tandem::train
