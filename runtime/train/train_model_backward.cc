// TrainModel's backward: the forward's steps in reverse from the saved
// activations, finishing the flat gradients from the end backwards.
//
// Tensor parallelism: a norm's output feeds column-split matmuls (wq/wk/wv,
// w1/w3, the vocab-split classifier) whose input gradients are each rank's
// partial sums, so they are all-reduced before the norm's backward. From then
// on the residual stream's gradient is the same on every rank, and so are
// the replicated norms' gradients. The all-reduces after wo and w2 in the
// forward need nothing in the backward: each rank's share receives the
// residual gradient as is.
#include "runtime/train/ops.h"
#include "runtime/train/train_model_impl.h"

namespace tandem::train::detail {
namespace {

void add_to(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] += x[i];
}

}  // namespace

Status TrainModelImpl::backward(std::span<const int> inputs, int64_t batch, const GradsFinalFn& on_grads_final) {
  const TrainShape& s = shape_;
  const LocalDims& d = local_;
  const int64_t rows = batch * s.seq_len, dim = s.dim, hd = s.head_dim();
  const AttentionDims attention{batch, s.seq_len, d.q_heads, d.kv_heads, hd};
  auto grads_final = [&](int64_t tensor) {
    if (on_grads_final) on_grads_final(tensors_[static_cast<size_t>(tensor)].offset);
  };
  float* const d_resid = ws_.d_resid;
  float* const d_normed = ws_.d_normed;
  float* const d_norm_in = ws_.d_norm_in;

  // The classifier and the final norm.
  const int64_t norm = final_norm_index(s), classifier = classifier_index(s);
  matmul_backward(d_normed, grad(classifier), ws_.dlogits, ws_.final_out, param(classifier), rows, dim, d.vocab,
                  /*accumulate_dx=*/false, pool_);
  TANDEM_RETURN_IF_ERROR(tp_sum(d_normed, rows * dim));
  rmsnorm_backward(d_resid, grad(norm), d_normed, ws_.x_final, param(norm), ws_.final_rstd, rows, dim);
  grads_final(norm);

  for (int64_t l = s.n_layers - 1; l >= 0; --l) {
    const LayerActivations& a = ws_.layers[static_cast<size_t>(l)];
    // MLP: x_out = x_mid + w2(silu(w1 ffn_in) * w3 ffn_in), ffn_in = rmsnorm(x_mid).
    matmul_backward(ws_.d_act, layer_grad(l, kW2), d_resid, a.act, layer_param(l, kW2), rows, d.hidden, dim,
                    false, pool_);
    swiglu_backward(ws_.d_gate, ws_.d_up, ws_.d_act, a.gate, a.up, rows * d.hidden);
    matmul_backward(d_normed, layer_grad(l, kW1), ws_.d_gate, a.ffn_in, layer_param(l, kW1), rows, dim, d.hidden,
                    false, pool_);
    matmul_backward(d_normed, layer_grad(l, kW3), ws_.d_up, a.ffn_in, layer_param(l, kW3), rows, dim, d.hidden,
                    true, pool_);
    TANDEM_RETURN_IF_ERROR(tp_sum(d_normed, rows * dim));
    rmsnorm_backward(d_norm_in, layer_grad(l, kFfnNorm), d_normed, a.x_mid, layer_param(l, kFfnNorm), a.ffn_rstd,
                     rows, dim);
    add_to(d_resid, d_norm_in, rows * dim);  // now the gradient of x_mid

    // Attention: x_mid = x_in + wo(attention(rope(wq attn_in), rope(wk attn_in), wv attn_in)).
    matmul_backward(ws_.d_att, layer_grad(l, kWo), d_resid, a.att, layer_param(l, kWo), rows, d.q_dim, dim, false,
                    pool_);
    attention_backward(ws_.d_q, ws_.d_k, ws_.d_v, ws_.d_att, a.probs, a.q, a.k, a.v, attention, pool_);
    rope_backward(ws_.d_q, rows, s.seq_len, d.q_heads, hd, s.rope_theta);
    rope_backward(ws_.d_k, rows, s.seq_len, d.kv_heads, hd, s.rope_theta);
    matmul_backward(d_normed, layer_grad(l, kWq), ws_.d_q, a.attn_in, layer_param(l, kWq), rows, dim, d.q_dim,
                    false, pool_);
    matmul_backward(d_normed, layer_grad(l, kWk), ws_.d_k, a.attn_in, layer_param(l, kWk), rows, dim, d.kv_dim,
                    true, pool_);
    matmul_backward(d_normed, layer_grad(l, kWv), ws_.d_v, a.attn_in, layer_param(l, kWv), rows, dim, d.kv_dim,
                    true, pool_);
    TANDEM_RETURN_IF_ERROR(tp_sum(d_normed, rows * dim));
    rmsnorm_backward(d_norm_in, layer_grad(l, kAttentionNorm), d_normed, a.x_in, layer_param(l, kAttentionNorm),
                     a.attn_rstd, rows, dim);
    add_to(d_resid, d_norm_in, rows * dim);  // now the gradient of x_in
    grads_final(layer_tensor_index(l, kAttentionNorm));
  }

  // Each shard adds into the rows it holds; the residual gradient is the
  // same on every rank, so together they hold the tp=1 embedding gradient.
  embedding_backward(grad(0), d_resid, d.vocab, dim, inputs, d.vocab_begin);
  grads_final(0);
  return Status::Ok();
}

}  // namespace tandem::train::detail
