// Causal grouped-query attention, forward and backward. One code path for
// both element types: detail:: primitives are the SIMD kernels for float and
// plain loops for double. The forward does per (sequence, query head) what
// cpu::attention_heads does per token, so a trained model attends exactly as
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

// Where the vectors of one sequence live: q/out rows of n_heads * head_dim,
// k/v rows of n_kv_heads * head_dim; a head's slice of token t (counted
// from the sequence's start) at q_offset() / kv_offset().
template <typename T>
struct SequenceView {
  SequenceView(const AttentionDims& dims, int64_t sequence)
      : first_row(sequence * dims.seq),
        seq(dims.seq),
        head_dim(dims.head_dim),
        q_stride(dims.n_heads * dims.head_dim),
        kv_stride(dims.n_kv_heads * dims.head_dim),
        scale(T(1) / std::sqrt(static_cast<T>(dims.head_dim))) {}
  int64_t q_offset(int64_t t, int64_t head) const { return (first_row + t) * q_stride + head * head_dim; }
  int64_t kv_offset(int64_t t, int64_t kv_head) const {
    return (first_row + t) * kv_stride + kv_head * head_dim;
  }
  int64_t first_row, seq, head_dim, q_stride, kv_stride;
  T scale;
};

// One query head over one sequence; probs: its [seq, seq] block.
template <typename T>
void attend_one_head(T* out, T* probs, const T* q, const T* k, const T* v, const SequenceView<T>& view,
                     int64_t head, int64_t kv_head) {
  const int64_t hd = view.head_dim;
  const T* k_head = k + view.kv_offset(0, kv_head);
  const T* v_head = v + view.kv_offset(0, kv_head);
  for (int64_t t = 0; t < view.seq; ++t) {
    const T* q_t = q + view.q_offset(t, head);
    T* p = probs + t * view.seq;
    for (int64_t s = 0; s <= t; ++s) p[s] = detail::dot(q_t, k_head + s * view.kv_stride, hd) * view.scale;
    detail::softmax(p, t + 1);
    std::fill(p + t + 1, p + view.seq, T(0));
    T* out_t = out + view.q_offset(t, head);
    std::fill_n(out_t, hd, T(0));
    for (int64_t s = 0; s <= t; ++s) detail::axpy(out_t, p[s], v_head + s * view.kv_stride, hd);
  }
}

// With P = probs, S = scores before the softmax, O = P V:
//   dV[s] += P[t,s] dO[t];  dP[t,s] = dO[t] . V[s];
//   dS[t,s] = P[t,s] (dP[t,s] - sum_s' P[t,s'] dP[t,s']);
//   dQ[t] = scale sum_s dS[t,s] K[s];  dK[s] += scale dS[t,s] Q[t].
// One query head's share; dK and dV of its KV head accumulate.
template <typename T>
void backprop_one_head(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k, const T* v,
                       const SequenceView<T>& view, int64_t head, int64_t kv_head, std::vector<T>& dprobs) {
  const int64_t hd = view.head_dim, stride = view.kv_stride;
  const T* k_head = k + view.kv_offset(0, kv_head);
  const T* v_head = v + view.kv_offset(0, kv_head);
  T* dk_head = dk + view.kv_offset(0, kv_head);
  T* dv_head = dv + view.kv_offset(0, kv_head);
  for (int64_t t = 0; t < view.seq; ++t) {
    const T* p = probs + t * view.seq;
    const T* dout_t = dout + view.q_offset(t, head);
    const T* q_t = q + view.q_offset(t, head);
    T* dq_t = dq + view.q_offset(t, head);
    T p_dot_dp = 0;
    for (int64_t s = 0; s <= t; ++s) {
      dprobs[s] = detail::dot(dout_t, v_head + s * stride, hd);
      detail::axpy(dv_head + s * stride, p[s], dout_t, hd);
      p_dot_dp += p[s] * dprobs[s];
    }
    std::fill_n(dq_t, hd, T(0));
    for (int64_t s = 0; s <= t; ++s) {
      const T dscore = p[s] * (dprobs[s] - p_dot_dp) * view.scale;
      detail::axpy(dq_t, dscore, k_head + s * stride, hd);
      detail::axpy(dk_head + s * stride, dscore, q_t, hd);
    }
  }
}

}  // namespace

// Work items are (sequence, query head) pairs: each writes its own out and
// probs block.
template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v, const AttentionDims& dims,
                       ThreadPool* pool) {
  check_dims(dims);
  const int64_t group = dims.n_heads / dims.n_kv_heads;
  const int64_t item_work = dims.seq * dims.seq * dims.head_dim;  // multiply-adds, within 2x
  auto attend_pairs = [&](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t sequence = pair / dims.n_heads, head = pair % dims.n_heads;
      attend_one_head(out, probs + pair * dims.seq * dims.seq, q, k, v, SequenceView<T>(dims, sequence), head,
                      head / group);
    }
  };
  detail::for_ranges(pool, dims.batch * dims.n_heads, detail::grain_for(item_work), attend_pairs);
}

// The query heads sharing a KV head all add into its dK and dV, so the work
// items are (sequence, KV head) pairs, each running its query heads in
// order: no two threads write one element, and the sums' order is fixed.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k,
                        const T* v, const AttentionDims& dims, ThreadPool* pool) {
  check_dims(dims);
  const int64_t group = dims.n_heads / dims.n_kv_heads;
  const int64_t item_work = 2 * group * dims.seq * dims.seq * dims.head_dim;  // multiply-adds, within 2x
  auto backprop_kv_heads = [&](int64_t begin, int64_t end) {
    std::vector<T> dprobs(static_cast<size_t>(dims.seq));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t sequence = item / dims.n_kv_heads, kv_head = item % dims.n_kv_heads;
      const SequenceView<T> view(dims, sequence);
      for (int64_t t = 0; t < dims.seq; ++t) {
        std::fill_n(dk + view.kv_offset(t, kv_head), dims.head_dim, T(0));
        std::fill_n(dv + view.kv_offset(t, kv_head), dims.head_dim, T(0));
      }
      for (int64_t head = kv_head * group; head < (kv_head + 1) * group; ++head) {
        const T* head_probs = probs + (sequence * dims.n_heads + head) * dims.seq * dims.seq;
        backprop_one_head(dq, dk, dv, dout, head_probs, q, k, v, view, head, kv_head, dprobs);
      }
    }
  };
  detail::for_ranges(pool, dims.batch * dims.n_kv_heads, detail::grain_for(item_work), backprop_kv_heads);
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
