// The CUDA backend's matrix products and attention: the matrix-vector kernels
// for up to cuda::kMatvecMaxTokens tokens, cuBLAS beyond (prefill).
#include <cmath>

#include "runtime/cuda/cuda_backend_impl.h"

namespace tandem {

cuda::WeightType weight_type(DType dtype) {
  switch (dtype) {
    case DType::kF32: return cuda::WeightType::kF32;
    case DType::kBF16: return cuda::WeightType::kBF16;
    case DType::kQ8_0: return cuda::WeightType::kQ8_0;
    case DType::kQ4_0: return cuda::WeightType::kQ4_0;
    default: TANDEM_CHECK_MSG(false, "cuda kernels do not read " + std::string(dtype_name(dtype)));
  }
  return cuda::WeightType::kF32;
}

void CudaBackend::matmul(const Tensor& out, const Tensor& x, const Tensor& w) {
  const MatmulTarget target{out, w};
  matmul_shared_input(x, std::span<const MatmulTarget>(&target, 1));
}

void CudaBackend::matmul_shared_input(const Tensor& x, std::span<const MatmulTarget> targets) {
  const int64_t tokens = x.rows(), n_in = x.row_length();
  for (const MatmulTarget& t : targets) {
    TANDEM_CHECK_MSG(t.w.row_length() == n_in, x.shape_string() + " x " + t.w.shape_string());
    TANDEM_CHECK(t.out.rows() == tokens && t.out.row_length() == t.w.rows());
    TANDEM_CHECK(t.w.dtype == targets[0].w.dtype);
  }
  (void)x.f32();
  if (try_gemv(x, nullptr, 0.0f, targets, cuda::GemvEpilogue::kStore)) return;
  if (tokens <= cuda::kMatvecMaxTokens) {
    for (size_t first = 0; first < targets.size(); first += cuda::kMatvecMaxTargets) {
      cuda::MatvecArgs args{};
      args.type = weight_type(targets[0].w.dtype);
      args.x = x.f32();
      args.tokens = tokens;
      args.n_in = n_in;
      for (size_t i = first; i < targets.size() && args.n_targets < cuda::kMatvecMaxTargets; ++i)
        args.targets[args.n_targets++] = {targets[i].w.data, targets[i].out.f32(), targets[i].w.rows()};
      TANDEM_CUDA_RECORD(cuda::matvec(stream_, args));
    }
    return;
  }
  // Prefill: x to bf16 once for all targets (cuBLAS wants both inputs in one type).
  const void* x_bf16 = nullptr;
  if (targets[0].w.dtype != DType::kF32) {
    auto buf = scratch(kXBf16, static_cast<size_t>(tokens * n_in) * 2);
    if (!buf.ok()) return record(buf.status());
    TANDEM_CUDA_RECORD(cuda::f32_to_bf16(stream_, static_cast<uint16_t*>(*buf), x.f32(), tokens * n_in));
    x_bf16 = *buf;
  }
  for (const MatmulTarget& t : targets) gemm(t.out, x, t.w, x_bf16);
}

bool CudaBackend::try_gemv(const Tensor& x, const Tensor* norm_w, float eps, std::span<const MatmulTarget> targets,
                           cuda::GemvEpilogue epilogue) {
  if (x.rows() != 1 || targets.empty() || targets.size() > static_cast<size_t>(cuda::kMatvecMaxTargets)) return false;
  cuda::GemvArgs args{};
  args.type = weight_type(targets[0].w.dtype);
  args.x = x.f32();
  args.n_in = x.row_length();
  args.eps = eps;
  args.epilogue = epilogue;
  if (norm_w) {
    TANDEM_CHECK(norm_w->dtype == DType::kF32 && norm_w->numel() == args.n_in);
    args.norm_w = norm_w->f32();
  }
  for (const MatmulTarget& t : targets) {
    TANDEM_CHECK_MSG(t.w.row_length() == args.n_in, x.shape_string() + " x " + t.w.shape_string());
    TANDEM_CHECK(t.out.rows() == 1 && t.out.row_length() == t.w.rows() && t.w.dtype == targets[0].w.dtype);
    args.targets[args.n_targets++] = {t.w.data, t.out.f32(), t.w.rows()};
  }
  if (epilogue == cuda::GemvEpilogue::kSwiglu)
    TANDEM_CHECK(targets.size() == 2 && targets[0].w.rows() == targets[1].w.rows());
  if (!cuda::gemv_applies(args)) return false;
  TANDEM_CUDA_RECORD(cuda::gemv(stream_, args, gemv_variant_));
  return true;
}

void CudaBackend::norm_matmul(const Tensor& normed, const Tensor& x, const Tensor& norm_w, float eps,
                              std::span<const MatmulTarget> targets) {
  if (!try_gemv(x, &norm_w, eps, targets, cuda::GemvEpilogue::kStore)) Backend::norm_matmul(normed, x, norm_w, eps, targets);
}

void CudaBackend::norm_matmul_swiglu(const Tensor& out, const Tensor& up, const Tensor& normed, const Tensor& x,
                                     const Tensor& norm_w, float eps, const Tensor& w_gate, const Tensor& w_up) {
  const MatmulTarget gate_up[] = {{out, w_gate}, {up, w_up}};
  if (!try_gemv(x, &norm_w, eps, gate_up, cuda::GemvEpilogue::kSwiglu))
    Backend::norm_matmul_swiglu(out, up, normed, x, norm_w, eps, w_gate, w_up);
}

void CudaBackend::matmul_add(const Tensor& x, const Tensor& a, const Tensor& w, const Tensor& scratch) {
  const MatmulTarget target{x, w};
  if (!try_gemv(a, nullptr, 0.0f, std::span<const MatmulTarget>(&target, 1), cuda::GemvEpilogue::kAccumulate))
    Backend::matmul_add(x, a, w, scratch);
}

void CudaBackend::gemm(const Tensor& out, const Tensor& x, const Tensor& w, const void* x_bf16) {
  // Row-major out[T, n_out] = x[T, n_in] w^T is, column-major,
  // out^T (n_out x T) = op_T(w as n_in x n_out) * (x^T as n_in x T).
  const int m = static_cast<int>(w.rows()), n = static_cast<int>(x.rows()), k = static_cast<int>(x.row_length());
  const float one = 1.0f, zero = 0.0f;
  if (w.dtype == DType::kF32) {
    TANDEM_CUBLAS_RECORD(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, w.data, CUDA_R_32F, k,
                                      x.data, CUDA_R_32F, k, &zero, out.data, CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
    return;
  }
  const void* w_bf16 = w.data;
  if (w.dtype != DType::kBF16) {
    // Quantized weights: widened to bf16 once per product; the weight read is
    // small next to a prefill's arithmetic.
    auto buf = scratch(kWBf16, static_cast<size_t>(w.numel()) * 2);
    if (!buf.ok()) return record(buf.status());
    TANDEM_CUDA_RECORD(cuda::weights_to_bf16(stream_, static_cast<uint16_t*>(*buf), w.data, weight_type(w.dtype),
                                             w.numel(), w.row_length()));
    w_bf16 = *buf;
  }
  TANDEM_CUBLAS_RECORD(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, w_bf16, CUDA_R_16BF, k, x_bf16,
                                    CUDA_R_16BF, k, &zero, out.data, CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::attention(const Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                            const AttentionShape& s) {
  TANDEM_CHECK(out.rows() == q.rows() && out.row_length() == q.row_length());
  TANDEM_CHECK(s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0);
  TANDEM_CHECK(q.row_length() == s.n_heads * s.head_dim);
  TANDEM_CHECK(k_cache.row_length() == s.n_kv_heads * s.head_dim);
  TANDEM_CHECK(v_cache.row_length() == k_cache.row_length() && v_cache.rows() == k_cache.rows());
  const int64_t tokens = q.rows();
  TANDEM_CHECK(s.start_pos >= 0 && s.start_pos + tokens <= k_cache.rows());
  TANDEM_CHECK(out.data != q.data);  // the split kernels read q after writing partials, not out
  if (tokens > cuda::kMatvecMaxTokens) return attention_prefill(out, q, k_cache, v_cache, s);
  TANDEM_CHECK_MSG(s.head_dim <= cuda::kAttentionMaxHeadDim, "head_dim " + std::to_string(s.head_dim));
  // Sized for the longest context and the most tokens at once, so decode
  // never grows it as positions advance.
  const int64_t max_splits = cuda::attention_splits(k_cache.rows());
  auto partials = scratch(
      kPartials, static_cast<size_t>(cuda::kMatvecMaxTokens * s.n_heads * max_splits * (s.head_dim + 2)) * 4);
  if (!partials.ok()) return record(partials.status());
  const size_t counters_needed = static_cast<size_t>(cuda::kMatvecMaxTokens * s.n_heads) * sizeof(unsigned);
  if (attention_counters_bytes_ < counters_needed) {
    // Zeroed once; every launch leaves them zero again.
    auto counters = scratch(kCounters, counters_needed);
    if (!counters.ok()) return record(counters.status());
    TANDEM_CUDA_RECORD(cudaMemsetAsync(*counters, 0, counters_needed, stream_));
    attention_counters_bytes_ = counters_needed;
  }
  // A recorded decode step replays at later positions: it covers them all.
  const int64_t splits = step_arg() ? max_splits : cuda::attention_splits(s.start_pos + tokens);
  const cuda::AttentionArgs args{out.f32(), q.f32(), k_cache.f32(), v_cache.f32(), tokens, s.n_heads,
                                 s.n_kv_heads, s.head_dim, s.start_pos, splits, step_arg()};
  TANDEM_CUDA_RECORD(cuda::attention_split_k(stream_, args, static_cast<float*>(*partials),
                                             static_cast<unsigned*>(scratch_[kCounters])));
}

void CudaBackend::attention_prefill(const Tensor& out, const Tensor& q, const Tensor& k_cache,
                                    const Tensor& v_cache, const AttentionShape& s) {
  // Per query head h (KV head g = h / group): scores_h = q_h k_g^T over all
  // len cached positions (cuBLAS, batched over g for each of the group's
  // heads), a causal softmax, then out_h = P_h v_g. The masked half of the
  // scores is computed and discarded: simpler than a tiled kernel, and the
  // GEMMs run at cuBLAS speed.
  const int64_t T = q.rows(), len = s.start_pos + T, hd = s.head_dim;
  const int64_t group = s.n_heads / s.n_kv_heads, q_dim = q.row_length(), kv_dim = k_cache.row_length();
  auto scores_buf = scratch(kScores, static_cast<size_t>(s.n_heads * T * len) * 4);
  if (!scores_buf.ok()) return record(scores_buf.status());
  float* scores = static_cast<float*>(*scores_buf);
  const float one = 1.0f, zero = 0.0f;
  const int kv_heads = static_cast<int>(s.n_kv_heads);
  const cublasComputeType_t compute = s.reduced_precision ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  auto batched = [&](cublasOperation_t op_a, int m, int n, int k, const float* a, int64_t lda, int64_t stride_a,
                     const float* b, int64_t ldb, int64_t stride_b, float* c, int64_t ldc, int64_t stride_c) {
    TANDEM_CUBLAS_RECORD(cublasGemmStridedBatchedEx(
        cublas_, op_a, CUBLAS_OP_N, m, n, k, &one, a, CUDA_R_32F, static_cast<int>(lda), stride_a, b, CUDA_R_32F,
        static_cast<int>(ldb), stride_b, &zero, c, CUDA_R_32F, static_cast<int>(ldc), stride_c, kv_heads, compute,
        CUBLAS_GEMM_DEFAULT));
  };
  for (int64_t j = 0; j < group; ++j) {
    // column-major: S_h^T (len x T) = op_T(K_g as hd x len) * (q_h^T as hd x T)
    batched(CUBLAS_OP_T, static_cast<int>(len), static_cast<int>(T), static_cast<int>(hd), k_cache.f32(), kv_dim, hd,
            q.f32() + j * hd, q_dim, group * hd, scores + j * T * len, len, group * T * len);
  }
  TANDEM_CUDA_RECORD(cuda::causal_softmax(stream_, scores, s.n_heads, T, len, s.start_pos,
                                          1.0f / std::sqrt(static_cast<float>(hd))));
  for (int64_t j = 0; j < group; ++j) {
    // column-major: out_h^T (hd x T) = (V_g as hd x len) * (P_h^T as len x T)
    batched(CUBLAS_OP_N, static_cast<int>(hd), static_cast<int>(T), static_cast<int>(len), v_cache.f32(), kv_dim, hd,
            scores + j * T * len, len, group * T * len, out.f32() + j * hd, q_dim, group * hd);
  }
}

}  // namespace tandem
