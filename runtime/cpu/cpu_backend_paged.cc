// The cpu backend's kernels for a batched step over a paged KV cache. The
// step's metadata (positions, block tables) is i32 in host memory, read in
// place. Attention runs every (token, head group) of every sequence in ONE
// parallel loop: a decode step of 64 sequences wakes the pool once per
// layer, not 64 times (~45 us a wake-up on the dev VM).
#include <cstring>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/kernels.h"

namespace tandem {
namespace {

const int32_t* i32(const Tensor& t) {
  TANDEM_CHECK(t.dtype == DType::kI32);
  return static_cast<const int32_t*>(t.data);
}

}  // namespace

Status CpuBackend::copy_from_host(const Tensor& dst, const void* src, size_t bytes) {
  TANDEM_CHECK(bytes <= dst.bytes());
  std::memcpy(dst.data, src, bytes);
  return Status::Ok();
}

void CpuBackend::rope_at(const Tensor& q, const Tensor& k, const Tensor& positions, const AttentionShape& s,
                         std::span<const double> inv_freq) {
  TANDEM_CHECK(positions.numel() == q.rows());
  rotate_at(q, k, std::span<const int32_t>(i32(positions), static_cast<size_t>(q.rows())), s, inv_freq);
}

void CpuBackend::store_kv_paged(const Tensor& k_pool, const Tensor& v_pool, const Tensor& k, const Tensor& v,
                                const Tensor& slots) {
  TANDEM_CHECK(k.rows() == v.rows() && k.row_length() == v.row_length());
  TANDEM_CHECK(k_pool.rows() == v_pool.rows() && k_pool.row_length() == k.row_length() &&
               v_pool.row_length() == v.row_length());
  TANDEM_CHECK(k_pool.dtype == v_pool.dtype && (k_pool.dtype == DType::kF32 || k_pool.dtype == DType::kF16));
  TANDEM_CHECK(slots.numel() == k.rows());
  const int32_t* slot = i32(slots);
  const int64_t width = k.row_length();
  for (int64_t t = 0; t < k.rows(); ++t) {
    // The model validated the block tables; a slot outside the pool is its bug.
    TANDEM_CHECK(slot[t] >= 0 && slot[t] < k_pool.rows());
    if (k_pool.dtype == DType::kF16) {
      cpu::f16_from_f32_row(static_cast<uint16_t*>(k_pool.data) + slot[t] * width, k.f32() + t * width, width);
      cpu::f16_from_f32_row(static_cast<uint16_t*>(v_pool.data) + slot[t] * width, v.f32() + t * width, width);
    } else {
      std::memcpy(k_pool.f32() + slot[t] * width, k.f32() + t * width, width * sizeof(float));
      std::memcpy(v_pool.f32() + slot[t] * width, v.f32() + t * width, width * sizeof(float));
    }
  }
}

void CpuBackend::paged_attention(const Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                                 const PagedAttention& p) {
  TANDEM_CHECK(out.rows() == q.rows() && out.row_length() == q.row_length());
  TANDEM_CHECK(p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0 && p.block_size > 0);
  TANDEM_CHECK(q.row_length() == p.n_heads * p.head_dim);
  TANDEM_CHECK(k_pool.row_length() == p.n_kv_heads * p.head_dim && v_pool.row_length() == k_pool.row_length());
  TANDEM_CHECK(k_pool.dtype == v_pool.dtype && (k_pool.dtype == DType::kF32 || k_pool.dtype == DType::kF16));
  const bool f16 = k_pool.dtype == DType::kF16;
  const int64_t tokens = q.rows();
  TANDEM_CHECK(p.positions.numel() == tokens && p.token_seq.numel() == tokens);
  const int32_t* pos = i32(p.positions);
  const int32_t* seq = i32(p.token_seq);
  const int32_t* tables = i32(p.block_tables);
  const int64_t table_stride = p.block_tables.row_length();
  const int64_t pieces = attention_pieces(tokens, p.n_heads, p.n_kv_heads);
  pool_.parallel_for(tokens * pieces, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i / pieces, n_pos = static_cast<int64_t>(pos[t]) + 1;
      TANDEM_CHECK(n_pos <= p.max_positions && seq[t] >= 0 && seq[t] < p.block_tables.rows());
      const HeadPiece piece = head_piece(i % pieces, pieces, p.n_heads, p.n_kv_heads, p.head_dim, k_pool.row_length());
      const int64_t row = t * q.row_length() + piece.q_offset, kv = piece.kv_offset;
      const int32_t* table = tables + seq[t] * table_stride;
      float* scratch = attention_scratch(n_pos, piece.heads);
      if (f16) {
        cpu::attention_heads_paged_f16(out.f32() + row, q.f32() + row, static_cast<const uint16_t*>(k_pool.data) + kv,
                                       static_cast<const uint16_t*>(v_pool.data) + kv, n_pos, table, p.block_size,
                                       piece.heads, scratch);
      } else {
        cpu::attention_heads_paged(out.f32() + row, q.f32() + row, k_pool.f32() + kv, v_pool.f32() + kv, n_pos, table,
                                   p.block_size, piece.heads, scratch);
      }
    }
  });
}

}  // namespace tandem
