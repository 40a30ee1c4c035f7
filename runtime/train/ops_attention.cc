// Causal grouped-query attention, forward and backward. One code path for
// both element types: detail:: primitives are the SIMD kernels for float and
// plain loops for double. The forward does per (sequence, query head) what
// cpu::attention_head does per token, so a trained model attends exactly as
// the inference engine will.
#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/status.h"
#include "runtime/train/ops.h"
#include "runtime/train/ops_internal.h"

namespace tandem::train {
namespace {

void check_dims(const AttentionDims& d) {
  TANDEM_CHECK(d.batch >= 0 && d.seq >= 1 && d.head_dim >= 1);
  TANDEM_CHECK(d.n_kv_heads >= 1 && d.n_heads >= d.n_kv_heads && d.n_heads % d.n_kv_heads == 0);
}

// Where one head's vectors live: row `token` of a [rows, heads * head_dim]
// array, `head`'s slice.
struct HeadLayout {
  int64_t row_stride;  // heads * head_dim
  int64_t head_dim;
  int64_t offset(int64_t token, int64_t head) const { return token * row_stride + head * head_dim; }
};

}  // namespace

template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v, const AttentionDims& dims,
                       ThreadPool* pool) {
  check_dims(dims);
  const int64_t seq = dims.seq, hd = dims.head_dim, group = dims.n_heads / dims.n_kv_heads;
  const HeadLayout q_layout{dims.n_heads * hd, hd};
  const HeadLayout kv_layout{dims.n_kv_heads * hd, hd};
  const T scale = T(1) / std::sqrt(static_cast<T>(hd));
  const int64_t pair_work = seq * seq * hd;  // multiply-adds per (sequence, head), within 2x
  detail::for_ranges(pool, dims.batch * dims.n_heads, detail::grain_for(pair_work), [&](int64_t begin,
                                                                                         int64_t end) {
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t b = pair / dims.n_heads, h = pair % dims.n_heads, kv_head = h / group;
      const int64_t first = b * seq;  // the sequence's first row
      const T* k_head = k + kv_layout.offset(first, kv_head);
      const T* v_head = v + kv_layout.offset(first, kv_head);
      for (int64_t t = 0; t < seq; ++t) {
        const T* q_t = q + q_layout.offset(first + t, h);
        T* p = probs + (pair * seq + t) * seq;
        for (int64_t s = 0; s <= t; ++s) p[s] = detail::dot(q_t, k_head + s * kv_layout.row_stride, hd) * scale;
        detail::softmax(p, t + 1);
        std::fill(p + t + 1, p + seq, T(0));
        T* out_t = out + q_layout.offset(first + t, h);
        std::fill_n(out_t, hd, T(0));
        for (int64_t s = 0; s <= t; ++s) detail::axpy(out_t, p[s], v_head + s * kv_layout.row_stride, hd);
      }
    }
  });
}

// With P = probs, S = scores before the softmax, O = P V:
//   dV[s] += P[t,s] dO[t];  dP[t,s] = dO[t] . V[s];
//   dS[t,s] = P[t,s] (dP[t,s] - sum_s' P[t,s'] dP[t,s']);
//   dQ[t] = scale sum_s dS[t,s] K[s];  dK[s] += scale dS[t,s] Q[t].
// The query heads sharing a KV head all add into its dK and dV, so the work
// items are (sequence, KV head) pairs, each running its query heads in
// order: no two threads write one element, and the sums' order is fixed.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k,
                        const T* v, const AttentionDims& dims, ThreadPool* pool) {
  check_dims(dims);
  const int64_t seq = dims.seq, hd = dims.head_dim, group = dims.n_heads / dims.n_kv_heads;
  const HeadLayout q_layout{dims.n_heads * hd, hd};
  const HeadLayout kv_layout{dims.n_kv_heads * hd, hd};
  const T scale = T(1) / std::sqrt(static_cast<T>(hd));
  const int64_t item_work = 2 * group * seq * seq * hd;  // multiply-adds per item, within 2x
  detail::for_ranges(pool, dims.batch * dims.n_kv_heads, detail::grain_for(item_work), [&](int64_t begin,
                                                                                            int64_t end) {
    std::vector<T> dprobs(static_cast<size_t>(seq));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / dims.n_kv_heads, kv_head = item % dims.n_kv_heads;
      const int64_t first = b * seq;
      for (int64_t s = 0; s < seq; ++s) {
        std::fill_n(dk + kv_layout.offset(first + s, kv_head), hd, T(0));
        std::fill_n(dv + kv_layout.offset(first + s, kv_head), hd, T(0));
      }
      const T* k_head = k + kv_layout.offset(first, kv_head);
      const T* v_head = v + kv_layout.offset(first, kv_head);
      T* dk_head = dk + kv_layout.offset(first, kv_head);
      T* dv_head = dv + kv_layout.offset(first, kv_head);
      const int64_t stride = kv_layout.row_stride;
      for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
        for (int64_t t = 0; t < seq; ++t) {
          const T* p = probs + ((b * dims.n_heads + h) * seq + t) * seq;
          const T* dout_t = dout + q_layout.offset(first + t, h);
          const T* q_t = q + q_layout.offset(first + t, h);
          T* dq_t = dq + q_layout.offset(first + t, h);
          T p_dot_dp = 0;
          for (int64_t s = 0; s <= t; ++s) {
            dprobs[s] = detail::dot(dout_t, v_head + s * stride, hd);
            detail::axpy(dv_head + s * stride, p[s], dout_t, hd);
            p_dot_dp += p[s] * dprobs[s];
          }
          std::fill_n(dq_t, hd, T(0));
          for (int64_t s = 0; s <= t; ++s) {
            const T dscore = p[s] * (dprobs[s] - p_dot_dp) * scale;
            detail::axpy(dq_t, dscore, k_head + s * stride, hd);
            detail::axpy(dk_head + s * stride, dscore, q_t, hd);
          }
        }
      }
    }
  });
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*,
                                       const AttentionDims&, ThreadPool*);
template void attention_forward<double>(double*, double*, const double*, const double*, const double*,
                                        const AttentionDims&, ThreadPool*);
template void attention_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                        const float*, const float*, const AttentionDims&, ThreadPool*);
template void attention_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*, const AttentionDims&,
                                         ThreadPool*);

}  // namespace tandem::train
