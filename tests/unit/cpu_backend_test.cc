// The CPU backend's composite kernels against float64, threaded.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/cpu/cpu_backend.h"

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

}  // namespace
}  // namespace tandem
