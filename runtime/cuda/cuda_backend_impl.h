// The CUDA backend's class, for the files that implement it: cuda_backend.cc
// (memory, transfers, elementwise kernels), cuda_matmul.cc (matrix products
// and attention, cuBLAS) and cuda_measure.cc. Not a public header.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <array>
#include <chrono>
#include <unordered_map>
#include <vector>

#include "runtime/backend.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/cuda_device.h"
#include "runtime/cuda/cuda_kernels.h"

namespace tandem {

Status cublas_status(cublasStatus_t status, const char* call, const char* file, int line);
// The kernels' code for a weight dtype; a programmer bug for any other (cuda_matmul.cc).
cuda::WeightType weight_type(DType dtype);
inline Status cuda_status_if(cudaError_t err, const char* call, const char* file, int line) {
  return err == cudaSuccess ? Status::Ok() : cuda_status(err, call, file, line);
}
inline Status cublas_status_if(cublasStatus_t s, const char* call, const char* file, int line) {
  return s == CUBLAS_STATUS_SUCCESS ? Status::Ok() : cublas_status(s, call, file, line);
}

class CudaBackend final : public Backend {
 public:
  static Result<std::unique_ptr<Backend>> create(int device);
  ~CudaBackend() override;

  std::string name() const override;
  Result<Buffer> allocate(size_t bytes) override;
  Result<Tensor> import_weights(const Tensor& host) override;
  Status copy_to_host(void* dst, const Tensor& src, size_t bytes) override;
  Status synchronize() override;

  void embed(const Tensor& out, const Tensor& table, std::span<const int> tokens,
             int64_t first_row) override;
  void rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w, float eps) override;
  void matmul(const Tensor& out, const Tensor& x, const Tensor& w) override;
  void matmul_shared_input(const Tensor& x, std::span<const MatmulTarget> targets) override;
  void rope(const Tensor& q, const Tensor& k, const AttentionShape& shape, std::span<const double> inv_freq) override;
  void store_kv(const Tensor& k_cache, const Tensor& v_cache, const Tensor& k, const Tensor& v,
                int64_t start_pos) override;
  void attention(const Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                 const AttentionShape& shape) override;
  void swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) override;
  void add(const Tensor& x, const Tensor& y) override;
  void add_bias(const Tensor& x, const Tensor& bias) override;
  void norm_matmul(const Tensor& normed, const Tensor& x, const Tensor& norm_w, float eps,
                   std::span<const MatmulTarget> targets) override;
  void norm_matmul_swiglu(const Tensor& out, const Tensor& up, const Tensor& normed, const Tensor& x,
                          const Tensor& norm_w, float eps, const Tensor& w_gate, const Tensor& w_up) override;
  void matmul_add(const Tensor& x, const Tensor& a, const Tensor& w, const Tensor& scratch) override;
  void rope_store_kv(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& k_cache, const Tensor& v_cache,
                     const AttentionShape& shape, std::span<const double> inv_freq) override;
  void argmax(const Tensor& out, const Tensor& logits) override;
  Status fill_synthetic(const Tensor& t, uint64_t seed, float scale, float offset) override;
  // The paged kernels (cuda_paged.cc).
  bool supports_paged_kv() const override { return true; }
  Status copy_from_host(const Tensor& dst, const void* src, size_t bytes) override;
  void rope_at(const Tensor& q, const Tensor& k, const Tensor& positions, const AttentionShape& shape,
               std::span<const double> inv_freq) override;
  void store_kv_paged(const Tensor& k_pool, const Tensor& v_pool, const Tensor& k, const Tensor& v,
                      const Tensor& slots) override;
  void paged_attention(const Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                       const PagedAttention& p) override;
  Status decode_step(uint64_t key, std::span<const int> tokens, int64_t pos,
                     const std::function<void()>& enqueue) override;
  void forget_decode_step(uint64_t key) override;

  cudaStream_t stream() const { return stream_; }
  void* native_stream() const override { return stream_; }
  // How many times the host has waited for the stream (wait_idle): tests
  // check that a decode step with a device communicator's exchanges adds
  // only the token's read-back.
  uint64_t host_waits() const { return host_waits_; }
  cublasHandle_t cublas() const { return cublas_; }
  // Waits (polling, up to the deadline) for everything enqueued so far, and
  // returns the first error any enqueued call recorded, or the wait check's
  // (Backend::set_wait_check).
  Status wait_idle();
  Status error() const { return error_; }
  // Keeps the first failure of a call that returns no Status.
  void record(const Status& s) {
    if (error_.ok() && !s.ok()) error_ = s;
  }

 protected:
  void release(void* data, size_t bytes) override;

 private:
  // Scratch memory that grows on first need and then stays (no allocation per step).
  enum Slot { kXBf16, kWBf16, kScores, kPartials, kCounters, kArgmax, kSlots };

  CudaBackend() = default;
  Status init(int device);
  Status upload(void* device_dst, const void* host_src, size_t bytes);
  Status copy_raw_to_host(void* dst, const Tensor& src, size_t bytes);
  Result<void*> scratch(Slot slot, size_t bytes);
  void gemm(const Tensor& out, const Tensor& x, const Tensor& w, const void* x_bf16);
  // One token through kernels_gemv.cu's fused kernel; false (nothing
  // enqueued) where it does not apply.
  bool try_gemv(const Tensor& x, const Tensor* norm_w, float eps, std::span<const MatmulTarget> targets,
                cuda::GemvEpilogue epilogue);
  void attention_prefill(const Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                         const AttentionShape& s);

  CudaDeviceInfo info_;
  bool weights_in_place_ = false;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudaEvent_t idle_ = nullptr;
  void* cublas_workspace_ = nullptr;
  std::array<void*, 2> pinned_{};
  std::array<cudaEvent_t, 2> pinned_free_{};
  std::array<void*, kSlots> scratch_{};
  std::array<size_t, kSlots> scratch_bytes_{};
  size_t attention_counters_bytes_ = 0;  // zeroed kCounters (attention_split_k)
  size_t argmax_scratch_bytes_ = 0;      // zeroed kArgmax
  std::vector<Buffer> imported_;
  // Decode steps: their inputs on the device, and the graph recorded per key.
  // While `step_inputs_` is set the kernels read positions and token ids from
  // step_ (cuda::StepParams) instead of their arguments.
  cuda::StepParams* step_ = nullptr;
  bool step_inputs_ = false;
  bool graphs_ = true;    // TANDEM_CUDA_GRAPHS=0 turns recording off
  int gemv_variant_ = -1;  // TANDEM_GEMV_VARIANT=N picks a kernel shape (sweeps)
  struct StepGraph {
    int calls = 0;
    cudaGraphExec_t exec = nullptr;
  };
  std::unordered_map<uint64_t, StepGraph> step_graphs_;
  const cuda::StepParams* step_arg() const { return step_inputs_ ? step_ : nullptr; }
  std::chrono::milliseconds timeout_{120000};
  uint64_t host_waits_ = 0;
  Status error_;
};

// The rope table as a kernel parameter (cuda_kernels.h RopeFrequencies);
// aborts when it does not fit head_dim (a programmer bug).
cuda::RopeFrequencies rope_frequencies(std::span<const double> inv_freq, const AttentionShape& s);

}  // namespace tandem

// For calls inside the void kernels: record the failure, carry on (the next
// wait_idle() reports it).
#define TANDEM_CUDA_RECORD(call) record(::tandem::cuda_status_if((call), #call, __FILE__, __LINE__))
#define TANDEM_CUBLAS_RECORD(call) record(::tandem::cublas_status_if((call), #call, __FILE__, __LINE__))
#define TANDEM_CUBLAS_RETURN_IF_ERROR(call) \
  TANDEM_RETURN_IF_ERROR(::tandem::cublas_status_if((call), #call, __FILE__, __LINE__))
