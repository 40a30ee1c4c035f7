#include "runtime/train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "runtime/status.h"

namespace tandem::train {
namespace {

// torch's clip_grad_norm_ adds this to the norm before dividing.
constexpr double kClipNormEpsilon = 1e-6;

}  // namespace

// torch.optim.AdamW (single-tensor path, amsgrad off), per element:
//   p *= 1 - lr * wd                      (decoupled decay, before the update)
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// In float32 as torch computes it, with the step's scalars worked out in
// double once: the loop then vectorizes (this file is built with
// -fno-math-errno so sqrt does too), which matters because every rank of a
// data-parallel job runs the whole update each step.
void adamw_update(std::span<float> params, std::span<const float> grads, std::span<float> m,
                  std::span<float> v, double lr, const AdamWConfig& config, int64_t step, bool decay) {
  TANDEM_CHECK(step >= 1);
  TANDEM_CHECK(grads.size() == params.size() && m.size() == params.size() && v.size() == params.size());
  const double t = static_cast<double>(step);
  const float step_size = static_cast<float>(lr / (1.0 - std::pow(config.beta1, t)));
  const float inv_bias_correction2_sqrt = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(config.beta2, t)));
  const float keep = static_cast<float>(decay ? 1.0 - lr * config.weight_decay : 1.0);
  const float beta1 = static_cast<float>(config.beta1), beta2 = static_cast<float>(config.beta2);
  const float one_minus_beta1 = static_cast<float>(1.0 - config.beta1);
  const float one_minus_beta2 = static_cast<float>(1.0 - config.beta2);
  const float eps = static_cast<float>(config.eps);
  float* const p = params.data();
  float* const mm = m.data();
  float* const vv = v.data();
  const float* const g = grads.data();
  const size_t n = params.size();
  for (size_t i = 0; i < n; ++i) {
    const float mi = beta1 * mm[i] + one_minus_beta1 * g[i];
    const float vi = beta2 * vv[i] + one_minus_beta2 * g[i] * g[i];
    mm[i] = mi;
    vv[i] = vi;
    p[i] = p[i] * keep - step_size * mi / (std::sqrt(vi) * inv_bias_correction2_sqrt + eps);
  }
}

// Eight partial sums in a fixed lane order: the same result on every run and
// rank, and a loop the compiler can vectorize (one running sum cannot be).
double sum_of_squares(std::span<const float> g) {
  constexpr size_t kLanes = 8;
  double lanes[kLanes] = {};
  const size_t whole = g.size() / kLanes * kLanes;
  for (size_t i = 0; i < whole; i += kLanes) {
    for (size_t l = 0; l < kLanes; ++l) lanes[l] += static_cast<double>(g[i + l]) * g[i + l];
  }
  for (size_t i = whole; i < g.size(); ++i) lanes[i - whole] += static_cast<double>(g[i]) * g[i];
  double sum = 0.0;
  for (const double lane : lanes) sum += lane;
  return sum;
}

// torch.nn.utils.clip_grad_norm_ (what nanoGPT calls): the gradient is
// multiplied by min(1, max_norm / (norm + 1e-6)).
double clip_factor(double norm, double max_norm) {
  if (max_norm <= 0.0) return 1.0;
  // Torch's factor for an infinite or NaN norm turns the gradient into NaN;
  // saying so beats returning 0 or 1 and stepping on with a broken gradient.
  if (!std::isfinite(norm)) return std::numeric_limits<double>::quiet_NaN();
  return std::min(1.0, max_norm / (norm + kClipNormEpsilon));
}

// nanoGPT's get_lr(it):
//   it < warmup:        lr * (it + 1) / (warmup + 1)
//   it > decay_steps:   min_lr
//   else:               min_lr + 0.5 (1 + cos(pi r)) (lr - min_lr),
//                       r = (it - warmup) / (decay_steps - warmup)
double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) {
    return max_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps + 1);
  }
  // decay_steps <= warmup_steps leaves no cosine to run (nanoGPT would
  // divide by zero at it == decay_steps): straight to min_lr.
  if (step > decay_steps || decay_steps <= warmup_steps) return min_lr;
  const double ratio =
      static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps - warmup_steps);
  const double coefficient = 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));
  return min_lr + coefficient * (max_lr - min_lr);
}

}  // namespace tandem::train
