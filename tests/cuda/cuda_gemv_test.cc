// kernels_gemv.cu's fused single-token units (RMSNorm of the input; the
// product stored, added to a residual, or through SwiGLU) against float64,
// through the backend's calls (the default kernel shape) and through every
// shape a sweep may choose. Q8_0/Q4_0 products use activations quantized to
// 8 bits per block of 32, so their bound adds |w| * amax / 254 per term.
#include <cuda_runtime.h>

#include <cstdio>
#include <functional>

#include "runtime/cuda/cuda_kernels.h"
#include "tests/cuda/cuda_test_util.h"

namespace tandem {
namespace {

using testing::random_values;

constexpr float kEps = 1e-5f;

class CudaGemv : public testing::CudaTest {};

// Each row's dot with n = rmsnorm(x) (or x), and how far the kernel may be off.
struct Dots {
  std::vector<double> value, bound;
};

Dots reference(const std::vector<float>& x, const std::vector<float>* norm_w, const std::vector<float>& w,
               int64_t n_in, bool int8_x) {
  std::vector<double> n(x.begin(), x.end());
  if (norm_w) {
    double ss = 0;
    for (double v : n) ss += v * v;
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n_in) + kEps);
    for (int64_t k = 0; k < n_in; ++k) n[k] *= scale * (*norm_w)[k];
  }
  Dots d;
  for (size_t r = 0; r < w.size() / n_in; ++r) {
    double sum = 0, mag = 0, quant = 0;
    for (int64_t k = 0; k < n_in; ++k) {
      const double wk = w[r * n_in + k];
      sum += n[k] * wk;
      mag += std::abs(n[k] * wk);
      if (int8_x) quant += std::abs(wk) * testing::block_amax(n.data(), k) / 254;
    }
    d.value.push_back(sum);
    d.bound.push_back(1e-5 * mag + 1.01 * quant + 1e-6);
  }
  return d;
}

void expect_within(const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& bound,
                   const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  testing::expect_close(got, want, 1.0, bound, 0, what);
}

struct Case {
  DType dtype;
  int64_t n_in;
};

TEST_F(CudaGemv, FusedUnitsMatchFloat64ForEveryKernelShape) {
  const std::vector<Case> cases = {{DType::kF32, 260},  {DType::kF32, 1024}, {DType::kBF16, 264}, {DType::kBF16, 1536},
                                   {DType::kQ8_0, 256}, {DType::kQ8_0, 1280}, {DType::kQ4_0, 256}, {DType::kQ4_0, 2304}};
  uint32_t seed = 900;
  for (const Case& c : cases) {
    const cuda::WeightType type = c.dtype == DType::kF32    ? cuda::WeightType::kF32
                                  : c.dtype == DType::kBF16 ? cuda::WeightType::kBF16
                                  : c.dtype == DType::kQ8_0 ? cuda::WeightType::kQ8_0
                                                            : cuda::WeightType::kQ4_0;
    const bool int8_x = c.dtype == DType::kQ8_0 || c.dtype == DType::kQ4_0;
    // Activations of a residual stream's size; norm weights around 1.
    auto x = random_values(c.n_in, seed++, -3.0f, 3.0f), g = random_values(c.n_in, seed++, 0.5f, 1.5f);
    const std::vector<int64_t> rows = {37, 5, 64};
    std::vector<testing::HostWeights> w;
    for (int64_t n : rows) w.push_back(testing::make_weights(c.dtype, n, c.n_in, seed++));
    auto gate = testing::make_weights(c.dtype, 70, c.n_in, seed++), up = testing::make_weights(c.dtype, 70, c.n_in, seed++);
    auto residual = random_values(37, seed++);
    Tensor xd = upload(x, {1, c.n_in}), gd = upload(g, {c.n_in});
    std::vector<Tensor> wd;
    for (size_t i = 0; i < rows.size(); ++i)
      wd.push_back(upload(w[i].bytes.data(), w[i].bytes.size(), c.dtype, {rows[i], c.n_in}));
    Tensor gated = upload(gate.bytes.data(), gate.bytes.size(), c.dtype, {70, c.n_in});
    Tensor upd = upload(up.bytes.data(), up.bytes.size(), c.dtype, {70, c.n_in});

    // -1: through the backend's calls; 0..: cuda::gemv's shapes directly.
    for (int variant = -1; variant < cuda::gemv_variant_count(type); ++variant) {
      const std::string what = std::string(dtype_name(c.dtype)) + " n_in " + std::to_string(c.n_in) + " shape " +
                               (variant < 0 ? std::string("default, via the backend")
                                            : cuda::gemv_variant_name(type, variant));
      std::vector<MatmulTarget> targets;
      for (size_t i = 0; i < rows.size(); ++i) targets.push_back({poisoned({1, rows[i]}), wd[i]});
      Tensor acc = upload(residual, {1, 37});
      Tensor swiglu_out = poisoned({1, 70}), up_scratch = poisoned({1, 70});
      if (variant < 0) {
        gpu_->norm_matmul(poisoned({1, c.n_in}), xd, gd, kEps, targets);
        gpu_->matmul_add(acc, xd, wd[0], poisoned({1, 37}));
        gpu_->norm_matmul_swiglu(swiglu_out, up_scratch, poisoned({1, c.n_in}), xd, gd, kEps, gated, upd);
      } else {
        ASSERT_TRUE(gpu_->synchronize().ok());
        auto args = [&](cuda::GemvEpilogue e, const float* norm) {
          cuda::GemvArgs a{};
          a.type = type;
          a.x = xd.f32();
          a.norm_w = norm;
          a.eps = kEps;
          a.n_in = c.n_in;
          a.epilogue = e;
          return a;
        };
        cuda::GemvArgs store = args(cuda::GemvEpilogue::kStore, gd.f32());
        for (size_t i = 0; i < targets.size(); ++i)
          store.targets[store.n_targets++] = {targets[i].w.data, targets[i].out.f32(), rows[i]};
        cuda::GemvArgs add = args(cuda::GemvEpilogue::kAccumulate, nullptr);
        add.targets[add.n_targets++] = {wd[0].data, acc.f32(), 37};
        cuda::GemvArgs sw = args(cuda::GemvEpilogue::kSwiglu, gd.f32());
        sw.targets[sw.n_targets++] = {gated.data, swiglu_out.f32(), 70};
        sw.targets[sw.n_targets++] = {upd.data, up_scratch.f32(), 70};
        for (const cuda::GemvArgs* a : {&store, &add, &sw}) {
          ASSERT_TRUE(cuda::gemv_applies(*a)) << what;
          ASSERT_EQ(cuda::gemv(nullptr, *a, variant), cudaSuccess) << what;
        }
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      }
      for (size_t i = 0; i < rows.size(); ++i) {
        const Dots want = reference(x, &g, w[i].values, c.n_in, int8_x);
        expect_within(download(targets[i].out), want.value, want.bound, what + " norm+store target " + std::to_string(i));
      }
      Dots added = reference(x, nullptr, w[0].values, c.n_in, int8_x);
      for (size_t r = 0; r < added.value.size(); ++r) added.value[r] += residual[r];
      expect_within(download(acc), added.value, added.bound, what + " accumulate");
      const Dots dg = reference(x, &g, gate.values, c.n_in, int8_x), du = reference(x, &g, up.values, c.n_in, int8_x);
      std::vector<double> want(70), bound(70);
      for (size_t r = 0; r < want.size(); ++r) {
        const double silu = dg.value[r] / (1 + std::exp(-dg.value[r]));
        want[r] = silu * du.value[r];
        // silu' <= 1.1: the gate's error moves silu by at most 1.1 times it.
        bound[r] = 1.1 * dg.bound[r] * (std::abs(du.value[r]) + du.bound[r]) + std::abs(silu) * du.bound[r] +
                   1e-6 * std::abs(want[r]);
      }
      expect_within(download(swiglu_out), want, bound, what + " norm+swiglu");
    }
  }
}

// A Q tensor imported to the device comes back in ggml's layout, byte for byte.
TEST_F(CudaGemv, QuantizedWeightsRoundTripThroughTheSplitLayout) {
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0}) {
    for (int64_t cols : {32, 96, 4096}) {
      auto w = testing::make_weights(dtype, 7, cols, 77);
      Tensor t = upload(w.bytes.data(), w.bytes.size(), dtype, {7, cols});
      std::vector<uint8_t> back(w.bytes.size());
      ASSERT_TRUE(gpu_->copy_to_host(back.data(), t, back.size()).ok());
      EXPECT_EQ(back, w.bytes) << dtype_name(dtype) << " cols " << cols;
    }
  }
}

// Not a test: the sweep behind kernels_gemv.cu's default shapes
// (docs/benchmarks.md). For each of an 8B decode step's products it times
// every kernel shape (and the unfused matvec kernel) on copies of the weights
// that together exceed the L2 cache, and prints GB/s of weights against a
// read-only kernel's rate measured here. Run with
// --gtest_also_run_disabled_tests --gtest_filter='*Sweep*'.
TEST_F(CudaGemv, DISABLED_SweepKernelShapesOn8BProducts) {
  struct Product {
    const char* name;
    std::vector<int64_t> rows;
    int64_t n_in;
    cuda::GemvEpilogue epilogue;
    bool norm;
  };
  const std::vector<Product> products = {
      {"qkv 6144x4096 +norm", {4096, 1024, 1024}, 4096, cuda::GemvEpilogue::kStore, true},
      {"wo 4096x4096 +add", {4096}, 4096, cuda::GemvEpilogue::kAccumulate, false},
      {"gate/up 2x14336x4096 +norm+swiglu", {14336, 14336}, 4096, cuda::GemvEpilogue::kSwiglu, true},
      {"down 4096x14336 +add", {4096}, 14336, cuda::GemvEpilogue::kAccumulate, false},
      {"classifier 128256x4096 +norm", {128256}, 4096, cuda::GemvEpilogue::kStore, true},
  };
  cudaEvent_t start, stop;
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
  auto time_ms = [&](int iters, const std::function<void(int)>& body) {
    body(0);
    EXPECT_EQ(cudaEventRecord(start), cudaSuccess);
    for (int i = 0; i < iters; ++i) body(i);
    EXPECT_EQ(cudaEventRecord(stop), cudaSuccess);
    EXPECT_EQ(cudaEventSynchronize(stop), cudaSuccess);
    float ms = 0;
    EXPECT_EQ(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
    return static_cast<double>(ms) / iters;
  };
  // The ceiling: a kernel that only reads 1 GiB.
  const size_t probe_bytes = size_t{1} << 30;
  void* probe = nullptr;
  uint32_t* probe_out = nullptr;
  ASSERT_EQ(cudaMalloc(&probe, probe_bytes), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&probe_out, 4096 * sizeof(uint32_t)), cudaSuccess);
  const double probe_ms = time_ms(5, [&](int) { ASSERT_EQ(cuda::read_probe(nullptr, probe, probe_bytes, probe_out, 4096), cudaSuccess); });
  const double ceiling = probe_bytes / probe_ms / 1e6;
  std::printf("read-only kernel: %.0f GB/s\n", ceiling);
  cudaFree(probe);
  cudaFree(probe_out);

  for (cuda::WeightType type : {cuda::WeightType::kBF16, cuda::WeightType::kQ8_0, cuda::WeightType::kQ4_0}) {
    const DType dtype = type == cuda::WeightType::kBF16 ? DType::kBF16 : type == cuda::WeightType::kQ8_0 ? DType::kQ8_0 : DType::kQ4_0;
    for (const Product& p : products) {
      size_t bytes = 0;
      for (int64_t r : p.rows) bytes += Tensor::view(nullptr, dtype, {r, p.n_in}).bytes();
      const int copies = static_cast<int>(std::max<size_t>(2, (size_t{400} << 20) / bytes + 1));
      std::vector<void*> weights;
      for (int c = 0; c < copies; ++c)
        for (int64_t r : p.rows) {
          void* w = nullptr;
          ASSERT_EQ(cudaMalloc(&w, Tensor::view(nullptr, dtype, {r, p.n_in}).bytes()), cudaSuccess);
          ASSERT_EQ(cuda::fill_synthetic(nullptr, w, type, r * p.n_in, p.n_in, 11 + c, 0.02f, 0.0f), cudaSuccess);
          weights.push_back(w);
        }
      float *x = nullptr, *g = nullptr, *out = nullptr;
      ASSERT_EQ(cudaMalloc(&x, p.n_in * 4), cudaSuccess);
      ASSERT_EQ(cudaMalloc(&g, p.n_in * 4), cudaSuccess);
      ASSERT_EQ(cudaMalloc(&out, 2 * 131072 * 4), cudaSuccess);
      ASSERT_EQ(cuda::fill_synthetic(nullptr, x, cuda::WeightType::kF32, p.n_in, p.n_in, 5, 1.0f, 0.0f), cudaSuccess);
      ASSERT_EQ(cuda::fill_synthetic(nullptr, g, cuda::WeightType::kF32, p.n_in, p.n_in, 6, 0.1f, 1.0f), cudaSuccess);
      auto args_for = [&](int copy) {
        cuda::GemvArgs a{};
        a.type = type;
        a.x = x;
        a.norm_w = p.norm ? g : nullptr;
        a.eps = kEps;
        a.n_in = p.n_in;
        a.epilogue = p.epilogue;
        int64_t offset = 0;
        for (size_t i = 0; i < p.rows.size(); ++i) {
          a.targets[a.n_targets++] = {weights[copy * p.rows.size() + i], out + offset, p.rows[i]};
          offset += p.rows[i];
        }
        return a;
      };
      std::printf("%-6s %-34s %7.1f MB:", std::string(dtype_name(dtype)).c_str(), p.name, bytes / 1e6);
      for (int v = 0; v < cuda::gemv_variant_count(type); ++v) {
        const double ms = time_ms(20, [&](int i) { ASSERT_EQ(cuda::gemv(nullptr, args_for(i % copies), v), cudaSuccess); });
        std::printf("  %s %.0f GB/s (%.0f%%)", cuda::gemv_variant_name(type, v), bytes / ms / 1e6, bytes / ms / 1e6 / ceiling * 100);
      }
      if (p.epilogue != cuda::GemvEpilogue::kSwiglu) {
        const double ms = time_ms(20, [&](int i) {
          const cuda::GemvArgs a = args_for(i % copies);
          cuda::MatvecArgs m{};
          for (int t = 0; t < a.n_targets; ++t) m.targets[m.n_targets++] = a.targets[t];
          m.type = type;
          m.x = x;
          m.tokens = 1;
          m.n_in = p.n_in;
          ASSERT_EQ(cuda::matvec(nullptr, m), cudaSuccess);
        });
        std::printf("  | unfused matvec %.0f GB/s", bytes / ms / 1e6);
      }
      std::printf("\n");
      std::fflush(stdout);
      for (void* w : weights) cudaFree(w);
      cudaFree(x);
      cudaFree(g);
      cudaFree(out);
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

}  // namespace
}  // namespace tandem
