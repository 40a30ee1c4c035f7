// The CPU backend: host memory, kernels from runtime/cpu/kernels.h split over
// a thread pool. Kernels run synchronously, so synchronize() has nothing to do.
// Weight matrices may be f32, f16, bf16, q8_0 or q4_0 (runtime/cpu/kernels_quant.h;
// Q rows whole blocks of 32); norms and activations are f32.
#pragma once

#include <vector>

#include "runtime/backend.h"
#include "runtime/cpu/kernels_quant.h"
#include "runtime/thread_pool.h"

namespace tandem {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads);

  std::string name() const override;
  int threads() const { return pool_.size(); }
  ThreadPool& pool() { return pool_; }

  Result<Buffer> allocate(size_t bytes) override;
  Result<Tensor> import_weights(const Tensor& host) override;
  Status copy_to_host(void* dst, const Tensor& src, size_t bytes) override;
  Status synchronize() override { return Status::Ok(); }

  void embed(const Tensor& out, const Tensor& table, std::span<const int> tokens,
             int64_t first_row) override;
  void rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w, float eps) override;
  void matmul(const Tensor& out, const Tensor& x, const Tensor& w) override;
  void matmul_shared_input(const Tensor& x, std::span<const MatmulTarget> targets) override;
  void rope(const Tensor& q, const Tensor& k, const AttentionShape& shape, float theta) override;
  void store_kv(const Tensor& k_cache, const Tensor& v_cache, const Tensor& k, const Tensor& v,
                int64_t start_pos) override;
  void attention(const Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                 const AttentionShape& shape) override;
  void swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) override;
  void add(const Tensor& x, const Tensor& y) override;
  void argmax(const Tensor& out, const Tensor& logits) override;
  Status fill_synthetic(const Tensor& t, uint64_t seed, float scale, float offset) override;

 protected:
  void release(void* data, size_t bytes) override;

 private:
  ThreadPool pool_;
  // matmul's activations quantized for q8_0/q4_0 weights; grows to the
  // largest batch seen. The backend is driven from one thread at a time.
  std::vector<cpu::ActivationBlock> quantized_x_;
};

}  // namespace tandem
