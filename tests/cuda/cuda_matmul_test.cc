// Matrix products and attention on the GPU: the matrix-vector kernels (1..16
// tokens) and the cuBLAS path (more tokens) for every weight type against a
// float64 reference over the dequantized weights; attention (split-K decode
// and the cuBLAS prefill) against the CPU backend.
#include "runtime/quantize.h"
#include "tests/cuda/cuda_test_util.h"

namespace tandem {
namespace {

using testing::random_values;

class CudaMatmul : public testing::CudaTest {};

// out[t, r] against sum_k x[t,k] * w[r,k] in float64. Tolerance relative to
// sum |x w|: f32 kernels accumulate in f32 (1e-5); the cuBLAS path for bf16
// and Q weights rounds x to bf16 first (2^-8 relative per term). With
// `int8_x` (one token, Q weights: kernels_gemv.cu's integer products) x is
// quantized per block of 32 to amax/127 steps, so each term may be off by
// |w| * amax / 254 on top.
void check_products(const std::vector<float>& got, const std::vector<float>& x, const std::vector<float>& w,
                    int64_t tokens, int64_t n_in, int64_t n_out, double rel, const std::string& what,
                    bool int8_x = false) {
  std::vector<double> want(tokens * n_out), scale(tokens * n_out);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t r = 0; r < n_out; ++r) {
      double sum = 0, mag = 0;
      for (int64_t k = 0; k < n_in; ++k) {
        sum += double(x[t * n_in + k]) * w[r * n_in + k];
        mag += std::abs(double(x[t * n_in + k]) * w[r * n_in + k]);
        if (int8_x) mag += std::abs(double(w[r * n_in + k])) * testing::block_amax(&x[t * n_in], k) / 254 / rel;
      }
      want[t * n_out + r] = sum;
      scale[t * n_out + r] = mag;
    }
  testing::expect_close(got, want, rel, scale, 1e-6, what);
}

struct MatmulCase {
  DType dtype;
  int64_t tokens, n_in;
};

TEST_F(CudaMatmul, EveryTypeAndTokenCountMatchesFloat64) {
  const std::vector<MatmulCase> cases = {
      // n_in 37 and 172: f32/bf16 rows no multiple of 8 take the element-wise kernel.
      {DType::kF32, 1, 37},   {DType::kF32, 3, 256},   {DType::kF32, 16, 172},  {DType::kF32, 40, 72},
      {DType::kBF16, 1, 172}, {DType::kBF16, 5, 264},  {DType::kBF16, 16, 96},  {DType::kBF16, 33, 520},
      {DType::kQ8_0, 1, 96},  {DType::kQ8_0, 2, 256},  {DType::kQ8_0, 16, 224}, {DType::kQ8_0, 17, 288},
      {DType::kQ4_0, 1, 256}, {DType::kQ4_0, 4, 160},  {DType::kQ4_0, 11, 512}, {DType::kQ4_0, 64, 1024},
      // One token, rows of whole 16-byte units (Q: 8 blocks): kernels_gemv.cu.
      {DType::kBF16, 1, 2056}, {DType::kQ8_0, 1, 2304}, {DType::kQ4_0, 1, 4352}, {DType::kF32, 1, 388},
  };
  const std::vector<int64_t> rows = {37, 3, 130, 1};  // 4 targets: one grouped launch of 3, then 1
  uint32_t seed = 100;
  for (const MatmulCase& c : cases) {
    const std::string what = std::string(dtype_name(c.dtype)) + " tokens " + std::to_string(c.tokens) + " n_in " +
                             std::to_string(c.n_in);
    auto x = random_values(c.tokens * c.n_in, seed++);
    std::vector<testing::HostWeights> w;
    std::vector<MatmulTarget> targets;
    for (int64_t n_out : rows) {
      w.push_back(testing::make_weights(c.dtype, n_out, c.n_in, seed++));
      targets.push_back({poisoned({c.tokens, n_out}),
                         upload(w.back().bytes.data(), w.back().bytes.size(), c.dtype, {n_out, c.n_in})});
    }
    gpu_->matmul_shared_input(upload(x, {c.tokens, c.n_in}), targets);
    const bool widened = c.tokens > 16 && c.dtype != DType::kF32;
    const bool quantized = c.dtype == DType::kQ8_0 || c.dtype == DType::kQ4_0;
    const bool int8_x = c.tokens == 1 && quantized && c.n_in % 256 == 0;
    for (size_t i = 0; i < rows.size(); ++i)
      check_products(download(targets[i].out), x, w[i].values, c.tokens, c.n_in, rows[i], widened ? 8e-3 : 1e-5,
                     what + " target " + std::to_string(i), int8_x);
  }
}

struct AttentionCase {
  int64_t tokens, heads, kv_heads, head_dim, start_pos;
};

TEST_F(CudaMatmul, AttentionMatchesCpuForDecodeAndPrefill) {
  const std::vector<AttentionCase> cases = {
      {1, 8, 4, 8, 0},     {1, 8, 2, 64, 200},  {3, 6, 3, 40, 63},  {16, 4, 1, 128, 129},
      {1, 2, 2, 256, 70},  {40, 8, 2, 64, 0},   {37, 6, 2, 24, 91}, {17, 4, 4, 128, 5},
  };
  uint32_t seed = 500;
  for (const AttentionCase& c : cases) {
    const std::string what = "tokens " + std::to_string(c.tokens) + " heads " + std::to_string(c.heads) + "/" +
                             std::to_string(c.kv_heads) + " hd " + std::to_string(c.head_dim) + " start " +
                             std::to_string(c.start_pos);
    const int64_t ctx = c.start_pos + c.tokens + 3, q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim;
    // Scores of a few units keep the softmax away from one-hot.
    auto q = random_values(c.tokens * q_dim, seed++, -2.0f, 2.0f);
    auto kc = random_values(ctx * kv_dim, seed++, -2.0f, 2.0f), vc = random_values(ctx * kv_dim, seed++);
    const AttentionShape s{c.heads, c.kv_heads, c.head_dim, c.start_pos};
    std::vector<float> want(c.tokens * q_dim);
    cpu_.attention(Tensor::view(want.data(), DType::kF32, {c.tokens, q_dim}),
                   Tensor::view(q.data(), DType::kF32, {c.tokens, q_dim}), Tensor::view(kc.data(), DType::kF32, {ctx, kv_dim}),
                   Tensor::view(vc.data(), DType::kF32, {ctx, kv_dim}), s);
    Tensor out = poisoned({c.tokens, q_dim});
    gpu_->attention(out, upload(q, {c.tokens, q_dim}), upload(kc, {ctx, kv_dim}), upload(vc, {ctx, kv_dim}), s);
    // Outputs are convex combinations of values in [-1, 1]; f32 throughout.
    testing::expect_close(download(out), want, 2e-5, what);
    // With reduced precision (bf16/Q models) prefill runs in TF32: 10-bit
    // mantissas move scores of a few units by ~1e-3 each.
    AttentionShape reduced = s;
    reduced.reduced_precision = true;
    Tensor out_tf32 = poisoned({c.tokens, q_dim});
    gpu_->attention(out_tf32, upload(q, {c.tokens, q_dim}), upload(kc, {ctx, kv_dim}), upload(vc, {ctx, kv_dim}),
                    reduced);
    testing::expect_close(download(out_tf32), want, 2e-2, what + " reduced precision");
  }
}

}  // namespace
}  // namespace tandem
