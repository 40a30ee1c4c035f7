// The cuda backend's kernels for a batched step over a paged KV cache: shape
// checks here, launches in kernels_paged.cu. Each is one launch for every
// sequence of the step. Not recorded into decode-step graphs: the model runs
// forward_batch outside Backend::decode_step (its shapes change every step).
// Attention is one block per (head, token) without split-K: fine for decode
// at short and medium contexts and for prefill chunks; long-context decode
// at small batch would want the splits of attention_split_k (a follow-up).
#include "runtime/cuda/cuda_backend_impl.h"

namespace tandem {
namespace {

const int32_t* i32(const Tensor& t) {
  TANDEM_CHECK(t.dtype == DType::kI32);
  return static_cast<const int32_t*>(t.data);
}

}  // namespace

Status CudaBackend::copy_from_host(const Tensor& dst, const void* src, size_t bytes) {
  TANDEM_CHECK(bytes <= dst.bytes());
  // Pageable source: cudaMemcpyAsync stages it before returning, so the
  // caller may reuse its buffer at once; the copy stays ordered on stream_.
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst.data, src, bytes, cudaMemcpyHostToDevice, stream_));
  return Status::Ok();
}

void CudaBackend::rope_at(const Tensor& q, const Tensor& k, const Tensor& positions, const AttentionShape& s,
                          std::span<const double> inv_freq) {
  TANDEM_CHECK(q.row_length() == s.n_heads * s.head_dim);
  TANDEM_CHECK(k.row_length() == s.n_kv_heads * s.head_dim && k.rows() == q.rows());
  TANDEM_CHECK(positions.numel() == q.rows());
  TANDEM_CUDA_RECORD(cuda::rope_at(stream_, q.f32(), k.f32(), i32(positions), q.rows(), s.n_heads, s.n_kv_heads,
                                   s.head_dim, rope_frequencies(inv_freq, s)));
}

void CudaBackend::store_kv_paged(const Tensor& k_pool, const Tensor& v_pool, const Tensor& k, const Tensor& v,
                                 const Tensor& slots) {
  TANDEM_CHECK(k.rows() == v.rows() && k.row_length() == v.row_length());
  TANDEM_CHECK(k_pool.rows() == v_pool.rows() && k_pool.row_length() == k.row_length() &&
               v_pool.row_length() == v.row_length());
  TANDEM_CHECK(slots.numel() == k.rows());
  TANDEM_CUDA_RECORD(cuda::store_kv_paged(stream_, k_pool.f32(), v_pool.f32(), k.f32(), v.f32(), i32(slots), k.rows(),
                                          k.row_length()));
}

void CudaBackend::paged_attention(const Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                                  const PagedAttention& p) {
  TANDEM_CHECK(out.rows() == q.rows() && out.row_length() == q.row_length());
  TANDEM_CHECK(p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0 && p.block_size > 0);
  TANDEM_CHECK(p.head_dim <= cuda::kAttentionMaxHeadDim);
  TANDEM_CHECK(q.row_length() == p.n_heads * p.head_dim);
  TANDEM_CHECK(k_pool.row_length() == p.n_kv_heads * p.head_dim && v_pool.row_length() == k_pool.row_length());
  TANDEM_CHECK(p.positions.numel() == q.rows() && p.token_seq.numel() == q.rows());
  cuda::PagedAttentionArgs a{};
  a.out = out.f32();
  a.q = q.f32();
  a.k_pool = k_pool.f32();
  a.v_pool = v_pool.f32();
  a.positions = i32(p.positions);
  a.token_seq = i32(p.token_seq);
  a.block_tables = i32(p.block_tables);
  a.table_stride = p.block_tables.row_length();
  a.block_size = p.block_size;
  a.tokens = q.rows();
  a.n_heads = p.n_heads;
  a.n_kv_heads = p.n_kv_heads;
  a.head_dim = p.head_dim;
  TANDEM_CUDA_RECORD(cuda::paged_attention(stream_, a));
}

}  // namespace tandem
