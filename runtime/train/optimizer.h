// AdamW, gradient clipping and the learning-rate schedule, as nanoGPT and
// PyTorch define them, over the flat parameter arrays of TrainModel.
#pragma once

#include <cstdint>
#include <span>

namespace tandem::train {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;  // decoupled: p -= lr * wd * p, only where `decay`
};

// One AdamW step (torch.optim.AdamW's arithmetic) on n parameters; `step` is
// 1-based (the bias corrections use beta^step). m and v are the moments,
// updated in place.
void adamw_update(std::span<float> params, std::span<const float> grads, std::span<float> m,
                  std::span<float> v, double lr, const AdamWConfig& config, int64_t step, bool decay);

// sum of g[i]^2 in double.
double sum_of_squares(std::span<const float> g);

// The factor that brings a gradient of global norm `norm` down to
// `max_norm` (1 when it is already within, or max_norm <= 0 turns clipping off).
// Exactly torch.nn.utils.clip_grad_norm_'s: min(1, max_norm / (norm + 1e-6)),
// so a norm just at max_norm is scaled by a hair under 1, as in nanoGPT. A
// non-finite norm (with clipping on) gives NaN, as torch's would.
double clip_factor(double norm, double max_norm);

// nanoGPT's get_lr, step 0-based: a linear warm-up, max_lr * (step + 1) /
// (warmup_steps + 1) for step < warmup_steps; then a cosine from max_lr down
// to min_lr at decay_steps; min_lr after. (decay_steps <= warmup_steps leaves
// no cosine, where nanoGPT would divide by zero: min_lr after the warm-up.)
struct LrSchedule {
  double max_lr = 1e-3;
  double min_lr = 1e-4;
  int64_t warmup_steps = 100;
  int64_t decay_steps = 2000;
  double at(int64_t step) const;
};

}  // namespace tandem::train
