// Shared support of the CUDA tests: a backend per test (or a skip naming why
// there is none), device copies of host vectors, NaN-poisoned outputs, and
// the float64 reference tolerances.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/llama_model.h"
#include "runtime/quantize.h"

namespace tandem::testing {

inline std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Random weights stored as `dtype` (ggml's layout for Q8_0/Q4_0), and the
// values those bytes decode to.
struct HostWeights {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};
inline HostWeights make_weights(DType dtype, int64_t rows, int64_t cols, uint32_t seed) {
  auto w = random_values(rows * cols, seed);
  HostWeights out;
  out.bytes.resize(Tensor::view(nullptr, dtype, {rows, cols}).bytes());
  out.values.resize(w.size());
  const size_t row_bytes = out.bytes.size() / rows;
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(dtype, &w[r * cols], cols, &out.bytes[r * row_bytes]);
    dequantize_row(dtype, &out.bytes[r * row_bytes], cols, &out.values[r * cols]);
  }
  return out;
}

// Where models/stories260K is: $TANDEM_MODEL_DIR when the tests run from a
// staged copy (scripts/gpu_stage.sh), else the source tree.
inline std::string stories_dir() {
  const char* env = std::getenv("TANDEM_MODEL_DIR");
  return env ? env : std::string(TANDEM_SOURCE_DIR) + "/models/stories260K";
}

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = make_backend({BackendKind::kCuda, 0, 0});
    if (!backend.ok()) GTEST_SKIP() << "no usable GPU, CUDA tests skipped: " << backend.status().to_string();
    gpu_ = std::move(*backend);
  }

  // Device memory holding `host` (bytes of any type), kept until the test
  // ends. Q8_0/Q4_0 weights go through import_weights, which stores them in
  // the backend's own layout (runtime/cuda/q_layout.h).
  Tensor upload(const void* host, size_t bytes, DType dtype, std::initializer_list<int64_t> dims) {
    if (dtype == DType::kQ8_0 || dtype == DType::kQ4_0) {
      Tensor host_view = Tensor::view(const_cast<void*>(host), dtype, dims);
      EXPECT_EQ(host_view.bytes(), bytes);
      auto imported = gpu_->import_weights(host_view);
      EXPECT_TRUE(imported.ok()) << imported.status().to_string();
      return imported.ok() ? *imported : Tensor{};
    }
    auto buffer = gpu_->allocate(bytes);
    EXPECT_TRUE(buffer.ok()) << buffer.status().to_string();
    EXPECT_EQ(cudaMemcpy(buffer->data(), host, bytes, cudaMemcpyHostToDevice), cudaSuccess);
    Tensor t = Tensor::view(buffer->data(), dtype, dims);
    buffers_.push_back(std::move(*buffer));
    return t;
  }
  Tensor upload(const std::vector<float>& host, std::initializer_list<int64_t> dims) {
    return upload(host.data(), host.size() * sizeof(float), DType::kF32, dims);
  }
  // An f32 device tensor filled with NaN, so an element no kernel wrote fails.
  Tensor poisoned(std::initializer_list<int64_t> dims) {
    Tensor t = Tensor::view(nullptr, DType::kF32, dims);
    auto buffer = gpu_->allocate(t.bytes());
    EXPECT_TRUE(buffer.ok());
    EXPECT_EQ(cudaMemset(buffer->data(), 0xff, t.bytes()), cudaSuccess);  // all-ones bits: NaN
    t.data = buffer->data();
    buffers_.push_back(std::move(*buffer));
    return t;
  }
  std::vector<float> download(const Tensor& t) {
    std::vector<float> v(t.numel());
    const Status s = gpu_->copy_to_host(v.data(), t, t.bytes());
    EXPECT_TRUE(s.ok()) << s.to_string();
    return v;
  }

  void TearDown() override {
    if (gpu_) {
      const Status s = gpu_->synchronize();
      EXPECT_TRUE(s.ok()) << s.to_string();
    }
    buffers_.clear();
  }

  std::unique_ptr<Backend> gpu_;
  std::vector<Buffer> buffers_;
  CpuBackend cpu_{2};
};

// Greedy tokens from BOS (token 1), the argmax taken by the model's backend.
inline std::vector<int> greedy_tokens(LlamaModel& model, int64_t steps) {
  std::vector<int> tokens = {1};
  for (int64_t pos = 0; pos + 1 < steps; ++pos) {
    auto next = model.forward_argmax(std::span<const int>(&tokens.back(), 1), pos);
    EXPECT_TRUE(next.ok()) << next.status().to_string();
    if (!next.ok()) break;
    tokens.push_back(*next);
  }
  return tokens;
}

// The largest |x| in the block of 32 holding element k: what sets the step of
// an activation quantized to 8 bits per block (kernels_gemv.cu).
template <class T>
double block_amax(const T* x, int64_t k) {
  double amax = 0;
  for (int64_t i = k / 32 * 32; i < k / 32 * 32 + 32; ++i) amax = std::max(amax, std::abs(double(x[i])));
  return amax;
}

// |got - want| <= rel * scale + abs for every element; NaN fails.
inline void expect_close(const std::vector<float>& got, const std::vector<double>& want, double rel,
                         const std::vector<double>& scale, double abs, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  int failures = 0;
  for (size_t i = 0; i < got.size() && failures < 5; ++i) {
    const double tol = rel * scale[i] + abs;
    if (!(std::abs(got[i] - want[i]) <= tol)) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i] << " +- " << tol;
      ++failures;
    }
  }
}
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                         const std::string& what) {
  std::vector<double> w(want.begin(), want.end()), scale(want.size(), 0.0);
  expect_close(got, w, 0, scale, tol, what);
}

}  // namespace tandem::testing
