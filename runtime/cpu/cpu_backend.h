// The CPU backend: host memory, kernels from runtime/cpu/kernels.h split over
// a thread pool. Kernels run synchronously, so synchronize() has nothing to do.
// Weight matrices may be f32, f16, bf16, q8_0, q4_0 or q4_k (runtime/cpu/kernels_quant.h;
// Q rows whole blocks of 32, or 256 for q4_k); norms and activations are f32.
#pragma once

#include <vector>

#include "runtime/backend.h"
#include "runtime/cpu/attention_rows.h"
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
  void rope(const Tensor& q, const Tensor& k, const AttentionShape& shape, std::span<const double> inv_freq) override;
  void store_kv(const Tensor& k_cache, const Tensor& v_cache, const Tensor& k, const Tensor& v,
                int64_t start_pos) override;
  void attention(const Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                 const AttentionShape& shape) override;
  void swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) override;
  void add(const Tensor& x, const Tensor& y) override;
  void add_bias(const Tensor& x, const Tensor& bias) override;
  void argmax(const Tensor& out, const Tensor& logits) override;
  Status fill_synthetic(const Tensor& t, uint64_t seed, float scale, float offset) override;
  // The paged kernels (cpu_backend_paged.cc).
  bool supports_paged_kv() const override { return true; }
  // f16 halves the pool and the bytes attention reads (kernels.h).
  bool supports_kv_dtype(DType dtype) const override { return dtype == DType::kF32 || dtype == DType::kF16; }
  Status copy_from_host(const Tensor& dst, const void* src, size_t bytes) override;
  void rope_at(const Tensor& q, const Tensor& k, const Tensor& positions, const AttentionShape& shape,
               std::span<const double> inv_freq) override;
  void store_kv_paged(const Tensor& k_pool, const Tensor& v_pool, const Tensor& k, const Tensor& v,
                      const Tensor& slots) override;
  void paged_attention(const Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                       const PagedAttention& p) override;

 protected:
  void release(void* data, size_t bytes) override;

 private:
  // How many pieces attention cuts a token's heads into (cpu_backend.cc,
  // HeadPiece): as few as keep the pool busy, since each piece reads its
  // rows once; whole GQA groups while that is enough.
  int64_t attention_pieces(int64_t tokens, int64_t n_heads, int64_t n_kv_heads) const;
  // Piece `piece` of `pieces` of a token's heads: its query heads start at
  // float q_offset of a q / out row, their KV heads at kv_offset of a cache
  // row, laid out as `heads` says.
  struct HeadPiece {
    int64_t q_offset;
    int64_t kv_offset;
    cpu::AttentionHeads heads;
  };
  static HeadPiece head_piece(int64_t piece, int64_t pieces, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                              int64_t kv_stride);
  // The calling thread's scratch for attention over n_pos positions with
  // `heads`: grows to the longest context seen, then stays (no allocation
  // per step).
  static float* attention_scratch(int64_t n_pos, const cpu::AttentionHeads& heads);

  // The cos and sin RoPE turns each row by, for the positions of the last
  // rope() / rope_at() call: every layer of a step rotates q and k at the
  // same positions, so the trig (~1 us a token, the rotation's whole cost)
  // runs once a step instead of twice a layer. Recomputed whenever the
  // positions or the frequencies differ from the last call's.
  struct RopeAngles {
    std::vector<double> inv_freq;
    std::vector<int32_t> positions;
    std::vector<float> cos, sin;  // [row][pair]
  };
  // Makes rope_angles_ hold `positions` (rope_positions_ for rope()) at
  // inv_freq, then turns q's and k's rows by them.
  void rotate_at(const Tensor& q, const Tensor& k, std::span<const int32_t> positions, const AttentionShape& shape,
                 std::span<const double> inv_freq);

  ThreadPool pool_;
  // matmul's activations quantized for q8_0/q4_0/q4_k weights; grows to the
  // largest batch seen. The backend is driven from one thread at a time.
  std::vector<cpu::ActivationBlock> quantized_x_;
  RopeAngles rope_angles_;
  std::vector<int32_t> rope_positions_;  // rope()'s start_pos, start_pos + 1, ...
};

}  // namespace tandem
