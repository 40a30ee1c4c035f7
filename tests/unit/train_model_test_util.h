// Shapes, batches and helpers shared by TrainModel's tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/train/train_model.h"

namespace tandem::train::testing {

// The smallest shape that has everything: grouped-query attention (2 query
// heads per KV head), two layers, a vocabulary and MLP width that tp=2 splits
// unevenly (6 + 5 rows, 12 + 12 columns).
inline TrainShape tiny_gqa_shape() {
  TrainShape s;
  s.dim = 16;
  s.n_layers = 2;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.hidden_dim = 24;
  s.vocab_size = 11;
  s.seq_len = 5;
  return s;
}

// As tiny_gqa_shape but with 4 KV heads, so tp=4 divides them; hidden 26 and
// vocab 11 split 7/7/6/6 and 3/3/3/2.
inline TrainShape tiny_mha_shape() {
  TrainShape s = tiny_gqa_shape();
  s.n_kv_heads = 4;
  s.hidden_dim = 26;
  return s;
}

inline std::vector<int> random_tokens(size_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick(0, static_cast<int>(vocab) - 1);
  std::vector<int> out(n);
  for (int& t : out) t = pick(rng);
  return out;
}

// Parameters far from the init's near-uniform softmax (matrices N(0, 0.3^2),
// norms 1 + N(0, 0.2^2)), so every part of the model carries real gradient.
inline void randomize_params(TrainModel& model, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const ParamTensor& t : model.tensors()) {
    float* p = model.params().data() + t.offset;
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = t.replicated ? 1.0f + 0.2f * normal(rng) : 0.3f * normal(rng);
  }
}

// Rank's shard of `local` (laid out as its tensors()) written into the tp=1
// layout `full`: the test's own reassembly, independent of gather_full.
inline void place_shard(const std::vector<ParamTensor>& shard, const std::vector<ParamTensor>& whole,
                        const std::vector<float>& local, std::vector<float>& full) {
  ASSERT_EQ(shard.size(), whole.size());
  for (size_t i = 0; i < shard.size(); ++i) {
    const ParamTensor& t = shard[i];
    ASSERT_EQ(t.name, whole[i].name);
    ASSERT_EQ(t.full_rows, whole[i].rows);
    ASSERT_EQ(t.full_cols, whole[i].cols);
    for (int64_t r = 0; r < t.rows; ++r)
      for (int64_t c = 0; c < t.cols; ++c)
        full[whole[i].offset + (t.row_begin + r) * t.full_cols + t.col_begin + c] = local[t.offset + r * t.cols + c];
  }
}

inline float max_abs(const float* x, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

}  // namespace tandem::train::testing
