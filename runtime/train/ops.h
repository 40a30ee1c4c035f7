// The Llama block's operations for training: each forward saves what its
// backward needs, and each backward returns the gradients of its inputs and
// weights. Plain row-major arrays (no Backend: training runs on the CPU for
// now), templated on the element type: float is what training runs, double is
// the reference the finite-difference tests check (ops.cc instantiates both).
//
// Layout: a micro-batch is `batch` sequences of `seq` tokens, flattened to
// rows = batch * seq; token t of a sequence is at position t (training always
// starts sequences at 0). Weights are [n_out, n_in] as checkpoints store them.
//
// Gradient conventions, so the model can chain ops without copies:
//  - weight gradients ACCUMULATE (dw += ...): micro-batches add up;
//  - input gradients are OVERWRITTEN unless the op says otherwise
//    (matmul_backward's accumulate_dx lets q/k/v add into one dx).
// A `pool` of nullptr runs single-threaded; work is split so that every
// output element is computed by one thread in a fixed order: results do not
// depend on the number of threads (resume and data-parallel equality rely on
// it).
#pragma once

#include <cstdint>
#include <span>

#include "runtime/thread_pool.h"

namespace tandem::train {

// ---- embedding: a vocab-parallel shard holds rows [first_row, first_row + rows)
// out[t] = table[tokens[t] - first_row], zeros for tokens outside the shard.
template <typename T>
void embedding_forward(T* out, const T* table, int64_t rows, int64_t dim, std::span<const int> tokens,
                       int64_t first_row);
// dtable[tokens[t] - first_row] += dout[t] for tokens inside the shard.
template <typename T>
void embedding_backward(T* dtable, const T* dout, int64_t rows, int64_t dim, std::span<const int> tokens,
                        int64_t first_row);

// ---- RMSNorm over rows of n: out = x * w / sqrt(mean(x^2) + eps); rstd[r]
// saves 1 / sqrt(mean(x_r^2) + eps).
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t rows, int64_t n, T eps);
// dx = overwritten; dw += .
template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int64_t rows,
                      int64_t n);

// ---- matmul: out[m, o] = sum_i x[m, i] * w[o, i]; x [rows, n_in], w [n_out, n_in].
template <typename T>
void matmul_forward(T* out, const T* x, const T* w, int64_t rows, int64_t n_in, int64_t n_out,
                    ThreadPool* pool);
// dx = dout @ w (added to dx when accumulate_dx); dw += dout^T @ x.
// dx may be nullptr (the input needs no gradient).
template <typename T>
void matmul_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, int64_t rows, int64_t n_in,
                     int64_t n_out, bool accumulate_dx, ThreadPool* pool);

// ---- RoPE, llama2.c's interleaved layout (as cpu::rope_interleaved):
// within each head, pairs (2j, 2j+1) rotate by pos * theta^(-2j / head_dim),
// pos = row % seq. In place on v: [rows, n_heads * head_dim].
template <typename T>
void rope_forward(T* v, int64_t rows, int64_t seq, int64_t n_heads, int64_t head_dim, T theta);
// The transpose (a rotation by -angle), in place on the gradient.
template <typename T>
void rope_backward(T* dv, int64_t rows, int64_t seq, int64_t n_heads, int64_t head_dim, T theta);

// ---- causal grouped-query attention within each sequence.
struct AttentionDims {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t n_heads = 0;     // query heads (local to the tensor-parallel rank)
  int64_t n_kv_heads = 0;  // query head h reads KV head h / (n_heads / n_kv_heads)
  int64_t head_dim = 0;
  int64_t probs_size() const { return batch * n_heads * seq * seq; }
};
// q, out: [rows, n_heads * head_dim]; k, v: [rows, n_kv_heads * head_dim].
// Token t attends to tokens 0..t of its sequence with scores / sqrt(head_dim).
// probs ([batch, n_heads, seq, seq], probs_size()) saves the softmax, zeros
// above the diagonal.
template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v, const AttentionDims& dims,
                       ThreadPool* pool);
// dq, dk, dv overwritten (dk, dv summed over the query heads sharing them).
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k,
                        const T* v, const AttentionDims& dims, ThreadPool* pool);

// ---- SwiGLU: out = silu(gate) * up, silu(x) = x / (1 + exp(-x)).
template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n);
// dgate, dup overwritten.
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n);

// ---- softmax cross-entropy over full rows of logits [rows, vocab].
// Returns sum over rows of -log softmax(logits[r])[targets[r]] (in double).
// When dlogits is not null it is overwritten with
// (softmax(logits[r]) - onehot(targets[r])) * grad_scale. Targets must lie in
// [0, vocab) (checked by the caller: the dataset validates token ids).
template <typename T>
double cross_entropy(T* dlogits, const T* logits, std::span<const int> targets, int64_t rows, int64_t vocab,
                     T grad_scale);

}  // namespace tandem::train
