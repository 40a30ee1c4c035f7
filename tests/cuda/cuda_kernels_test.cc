// The CUDA backend's elementwise and row kernels against the CPU backend (the
// reference), on random inputs of odd sizes, outputs poisoned with NaN.
#include <cstring>

#include "runtime/quant_blocks.h"
#include "runtime/quantize.h"
#include "runtime/rope_frequencies.h"
#include "tests/cuda/cuda_test_util.h"

namespace tandem {
namespace {

using testing::random_values;

class CudaKernels : public testing::CudaTest {};

TEST_F(CudaKernels, RmsnormMatchesCpu) {
  const int64_t rows = 5, width = 1037;
  auto x = random_values(rows * width, 1), w = random_values(width, 2);
  std::vector<float> want(x.size());
  cpu_.rmsnorm(Tensor::view(want.data(), DType::kF32, {rows, width}), Tensor::view(x.data(), DType::kF32, {rows, width}),
               Tensor::view(w.data(), DType::kF32, {width}), 1e-5f);
  Tensor out = poisoned({rows, width});
  gpu_->rmsnorm(out, upload(x, {rows, width}), upload(w, {width}), 1e-5f);
  // Different summation orders of 1037 squares: float32 rounding, ~1e-6 relative.
  testing::expect_close(download(out), want, 1e-5, "rmsnorm");
}

TEST_F(CudaKernels, RopeMatchesCpuInterleaved) {
  const int64_t rows = 3, heads = 5, kv_heads = 1, hd = 22, start = 1234;
  auto q = random_values(rows * heads * hd, 3), k = random_values(rows * kv_heads * hd, 4);
  auto q_want = q, k_want = k;
  const AttentionShape s{heads, kv_heads, hd, start};
  LlamaConfig c;
  c.dim = heads * hd, c.n_heads = heads, c.rope_theta = 10000.0f;
  c.rope_scaling = RopeScaling{8.0f, 1.0f, 4.0f, 64};  // all three bands at these 11 pairs
  const std::vector<double> freqs = rope_inv_frequencies(c);
  cpu_.rope(Tensor::view(q_want.data(), DType::kF32, {rows, heads * hd}),
            Tensor::view(k_want.data(), DType::kF32, {rows, kv_heads * hd}), s, freqs);
  Tensor qd = upload(q, {rows, heads * hd}), kd = upload(k, {rows, kv_heads * hd});
  gpu_->rope(qd, kd, s, freqs);
  // Same double-precision angles; cos/sin of the CUDA libm may differ by an ulp.
  testing::expect_close(download(qd), q_want, 1e-5, "q");
  testing::expect_close(download(kd), k_want, 1e-5, "k");
}

// The fused rope + store_kv: q, k and the cache rows as the CPU's two calls
// leave them; rows outside start_pos.. stay unwritten.
TEST_F(CudaKernels, RopeStoreKvMatchesRopeThenStore) {
  const int64_t rows = 2, heads = 6, kv_heads = 2, hd = 16, start = 300, ctx = 305;
  const int64_t kv = kv_heads * hd;
  auto q = random_values(rows * heads * hd, 13), k = random_values(rows * kv, 14), v = random_values(rows * kv, 15);
  auto q_want = q, k_want = k;
  std::vector<float> kc_want(ctx * kv, 0.0f), vc_want(ctx * kv, 0.0f);
  const AttentionShape s{heads, kv_heads, hd, start};
  LlamaConfig c;
  c.dim = heads * hd, c.n_heads = heads, c.rope_theta = 500000.0f;
  const std::vector<double> freqs = rope_inv_frequencies(c);
  cpu_.rope_store_kv(Tensor::view(q_want.data(), DType::kF32, {rows, heads * hd}),
                     Tensor::view(k_want.data(), DType::kF32, {rows, kv}), Tensor::view(v.data(), DType::kF32, {rows, kv}),
                     Tensor::view(kc_want.data(), DType::kF32, {ctx, kv}),
                     Tensor::view(vc_want.data(), DType::kF32, {ctx, kv}), s, freqs);
  Tensor qd = upload(q, {rows, heads * hd}), kd = upload(k, {rows, kv}), kc = poisoned({ctx, kv}),
         vc = poisoned({ctx, kv});
  gpu_->rope_store_kv(qd, kd, upload(v, {rows, kv}), kc, vc, s, freqs);
  testing::expect_close(download(qd), q_want, 1e-5, "q");
  testing::expect_close(download(kd), k_want, 1e-5, "k");
  auto kc_h = download(kc), vc_h = download(vc);
  for (int64_t i = 0; i < ctx * kv; ++i) {
    if (i / kv >= start && i / kv < start + rows) {
      EXPECT_NEAR(kc_h[i], kc_want[i], 1e-5) << "k cache " << i;
      EXPECT_EQ(vc_h[i], vc_want[i]) << "v cache " << i;
    } else {
      EXPECT_TRUE(std::isnan(kc_h[i]) && std::isnan(vc_h[i])) << "cache element " << i << " written";
    }
  }
}

TEST_F(CudaKernels, SwigluAndAddMatchCpu) {
  const int64_t n = 4099;
  auto g = random_values(n, 5, -30.0f, 30.0f), u = random_values(n, 6), y = random_values(n, 7);
  std::vector<float> sw(n), sum = u;
  cpu_.swiglu(Tensor::view(sw.data(), DType::kF32, {n}), Tensor::view(g.data(), DType::kF32, {n}),
              Tensor::view(u.data(), DType::kF32, {n}));
  cpu_.add(Tensor::view(sum.data(), DType::kF32, {n}), Tensor::view(y.data(), DType::kF32, {n}));
  Tensor out = poisoned({n}), ud = upload(u, {n});
  gpu_->swiglu(out, upload(g, {n}), ud);
  gpu_->add(ud, upload(y, {n}));
  // expf on the device is within 2 ulp of the host's.
  testing::expect_close(download(out), sw, 1e-5 * 30, "swiglu");
  testing::expect_close(download(ud), sum, 0, "add");
}

// Rows of one chunk and of many (a 128k vocabulary: blocks per chunk, the
// last to finish merging), ties across chunks, twice (the counters reset).
TEST_F(CudaKernels, ArgmaxTakesTheFirstOfEqualMaxima) {
  for (const int64_t n : {int64_t{5003}, int64_t{128263}}) {
    for (uint32_t round = 0; round < 2; ++round) {
      const int64_t rows = 3;
      auto logits = random_values(rows * n, 8 + round);
      logits[1 * n + 17] = 5.0f;  // row 1: a tie, the first index wins
      logits[1 * n + 4000 + round * (n - 5000)] = 5.0f;
      logits[2 * n + n - 1] = 9.0f;  // row 2: the last element
      std::vector<int32_t> want(rows), got(rows, -1);
      cpu_.argmax(Tensor::view(want.data(), DType::kI32, {rows}), Tensor::view(logits.data(), DType::kF32, {rows, n}));
      EXPECT_EQ(want[1], 17);
      EXPECT_EQ(want[2], n - 1);
      auto out = gpu_->allocate(rows * 4);
      ASSERT_TRUE(out.ok());
      const Tensor out_t = Tensor::view(out->data(), DType::kI32, {rows});
      gpu_->argmax(out_t, upload(logits, {rows, n}));
      ASSERT_TRUE(gpu_->copy_to_host(got.data(), out_t, rows * 4).ok());
      EXPECT_EQ(got, want) << "n " << n << " round " << round;
    }
  }
}

// Embedding rows of every weight type: f32 against the CPU, the others
// against dequantize_row of the same bytes.
TEST_F(CudaKernels, EmbedReadsEveryWeightType) {
  const int64_t vocab = 37, width = 96;
  auto table = random_values(vocab * width, 9);
  const std::vector<int> tokens = {3, 36, 0, 3, 17};
  const auto n = static_cast<int64_t>(tokens.size());
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    Tensor sized = Tensor::view(nullptr, dtype, {vocab, width});
    std::vector<uint8_t> bytes(sized.bytes());
    const size_t row_bytes = bytes.size() / vocab;
    for (int64_t r = 0; r < vocab; ++r) quantize_row(dtype, table.data() + r * width, width, bytes.data() + r * row_bytes);
    std::vector<float> want(n * width);
    for (int64_t t = 0; t < n; ++t) dequantize_row(dtype, bytes.data() + tokens[t] * row_bytes, width, &want[t * width]);
    Tensor out = poisoned({n, width});
    gpu_->embed(out, upload(bytes.data(), bytes.size(), dtype, {vocab, width}), tokens);
    testing::expect_close(download(out), want, 0, std::string(dtype_name(dtype)));
  }
}

// The device's synthetic weights are the host's formula, bit for bit in f32
// and bf16; quantized blocks decode to the host's within one step of the scale.
TEST_F(CudaKernels, FillSyntheticMatchesTheHost) {
  const int64_t n = 32 * 41;
  const uint64_t seed = 0x5eed;
  std::vector<float> host(n);
  for (int64_t i = 0; i < n; ++i)
    host[i] = quant::add_rn(0.25f, quant::mul_rn(0.5f, quant::synthetic_uniform(seed, i)));
  std::vector<float> cpu_fill(n);
  ASSERT_TRUE(cpu_.fill_synthetic(Tensor::view(cpu_fill.data(), DType::kF32, {n}), seed, 0.5f, 0.25f).ok());
  EXPECT_EQ(cpu_fill, host);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    Tensor t = Tensor::view(nullptr, dtype, {n});
    std::vector<uint8_t> want(t.bytes()), got(t.bytes());
    quantize_row(dtype, host.data(), n, want.data());
    auto buffer = gpu_->allocate(t.bytes());
    ASSERT_TRUE(buffer.ok());
    t.data = buffer->data();
    ASSERT_TRUE(gpu_->fill_synthetic(t, seed, 0.5f, 0.25f).ok());
    ASSERT_TRUE(gpu_->copy_to_host(got.data(), t, t.bytes()).ok());
    std::vector<float> want_f(n), got_f(n);
    dequantize_row(dtype, want.data(), n, want_f.data());
    dequantize_row(dtype, got.data(), n, got_f.data());
    const double step = dtype == DType::kQ4_0 ? 0.75 / 8 : dtype == DType::kQ8_0 ? 0.75 / 127 : 0;
    testing::expect_close(got_f, want_f, step * 1.001, std::string(dtype_name(dtype)));
  }
}

TEST_F(CudaKernels, StoreKvWritesTheRowsAtStartPos) {
  const int64_t ctx = 11, kv = 24, rows = 3, start = 7;
  auto k = random_values(rows * kv, 10), v = random_values(rows * kv, 11);
  Tensor kc = poisoned({ctx, kv}), vc = poisoned({ctx, kv});
  gpu_->store_kv(kc, vc, upload(k, {rows, kv}), upload(v, {rows, kv}), start);
  auto kc_h = download(kc), vc_h = download(vc);
  for (int64_t i = 0; i < rows * kv; ++i) {
    EXPECT_EQ(kc_h[start * kv + i], k[i]);
    EXPECT_EQ(vc_h[start * kv + i], v[i]);
  }
  EXPECT_TRUE(std::isnan(kc_h[(start - 1) * kv + kv - 1]));  // rows before start_pos untouched
}

}  // namespace
}  // namespace tandem
