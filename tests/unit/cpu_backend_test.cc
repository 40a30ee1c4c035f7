// The CPU backend's composite kernels against float64, threaded.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/kernels.h"

namespace tandem {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Several matmuls sharing one input, whose rows the threads split across the
// targets' boundaries, give each target exactly its own product.
TEST(CpuBackend, MatmulSharedInputMatchesFloat64PerTarget) {
  CpuBackend backend(3);
  const int64_t tokens = 3, n_in = 37;
  const std::vector<int64_t> rows = {7, 33, 5, 64};
  std::vector<float> x = random_values(tokens * n_in, 1);
  std::vector<std::vector<float>> w, out;
  std::vector<MatmulTarget> targets;
  for (size_t i = 0; i < rows.size(); ++i) {
    w.push_back(random_values(rows[i] * n_in, 10 + i));
    out.emplace_back(tokens * rows[i], std::nanf(""));  // unwritten elements stay NaN and fail
  }
  for (size_t i = 0; i < rows.size(); ++i)
    targets.push_back({Tensor::view(out[i].data(), DType::kF32, {tokens, rows[i]}),
                       Tensor::view(w[i].data(), DType::kF32, {rows[i], n_in})});
  backend.matmul_shared_input(Tensor::view(x.data(), DType::kF32, {tokens, n_in}), targets);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t r = 0; r < rows[i]; ++r) {
        double want = 0, scale = 0;
        for (int64_t k = 0; k < n_in; ++k) {
          want += double(x[t * n_in + k]) * w[i][r * n_in + k];
          scale += std::abs(double(x[t * n_in + k]) * w[i][r * n_in + k]);
        }
        // float32 accumulation of 37 terms: well inside 1e-5 of their magnitude.
        EXPECT_NEAR(out[i][t * rows[i] + r], want, 1e-5 * scale + 1e-7) << i << " " << t << " " << r;
      }
    }
  }
}

// rope() and rope_at() keep the last call's angles: calls at other
// positions or other frequencies (another model on the same backend, a
// scaled RoPE) must not reuse them. Each call is checked bit for bit against
// cpu::rope_interleaved row by row.
TEST(CpuBackend, RopeRecomputesItsAnglesWhenPositionsOrFrequenciesChange) {
  CpuBackend backend(2);
  AttentionShape s;
  s.n_heads = 4, s.n_kv_heads = 2, s.head_dim = 16;
  const int64_t rows = 5, q_len = s.n_heads * s.head_dim, k_len = s.n_kv_heads * s.head_dim;
  std::vector<double> base(8), scaled(8);
  for (int j = 0; j < 8; ++j) base[j] = std::pow(10000.0, -2.0 * j / 16), scaled[j] = base[j] / (j < 4 ? 1 : 8);
  uint32_t seed = 100;
  auto check = [&](const std::vector<int32_t>& positions, const std::vector<double>& inv_freq, bool paged) {
    SCOPED_TRACE(::testing::Message() << "first position " << positions[0] << (paged ? " paged" : " contiguous"));
    std::vector<float> q = random_values(rows * q_len, ++seed), k = random_values(rows * k_len, ++seed);
    std::vector<float> q_want = q, k_want = k;
    for (int64_t t = 0; t < rows; ++t) {
      cpu::rope_interleaved(q_want.data() + t * q_len, s.n_heads, s.head_dim, positions[t], inv_freq.data());
      cpu::rope_interleaved(k_want.data() + t * k_len, s.n_kv_heads, s.head_dim, positions[t], inv_freq.data());
    }
    const Tensor qt = Tensor::view(q.data(), DType::kF32, {rows, q_len});
    const Tensor kt = Tensor::view(k.data(), DType::kF32, {rows, k_len});
    if (paged) {
      std::vector<int32_t> pos = positions;
      backend.rope_at(qt, kt, Tensor::view(pos.data(), DType::kI32, {rows}), s, inv_freq);
    } else {
      s.start_pos = positions[0];
      backend.rope(qt, kt, s, inv_freq);
    }
    EXPECT_EQ(q, q_want);
    EXPECT_EQ(k, k_want);
  };
  const std::vector<int32_t> from_3 = {3, 4, 5, 6, 7}, from_9 = {9, 10, 11, 12, 13}, mixed = {0, 40, 41, 7, 2};
  check(from_3, base, false);
  check(from_3, base, false);  // the same step's next layer: the cached angles
  check(from_9, base, false);
  check(from_9, scaled, false);
  check(mixed, scaled, true);
  check(mixed, base, true);
  check(from_9, base, true);  // the contiguous call's positions, reached through rope_at
}

}  // namespace
}  // namespace tandem
