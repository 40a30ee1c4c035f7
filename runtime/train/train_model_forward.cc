// TrainModel's forward (runtime/llama_model.cc's architecture, every
// intermediate the backward needs kept) and its loss, vocab-parallel when
// the classifier is split.
#include <algorithm>
#include <cmath>

#include "runtime/train/ops.h"
#include "runtime/train/train_model_impl.h"

namespace tandem::train::detail {
namespace {

void add_into(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace

Status TrainModelImpl::forward(std::span<const int> inputs, int64_t batch) {
  const TrainShape& s = shape_;
  const LocalDims& d = local_;
  const int64_t rows = batch * s.seq_len, dim = s.dim, hd = s.head_dim();
  const AttentionDims attention{batch, s.seq_len, d.q_heads, d.kv_heads, hd};
  float* const proj = ws_.projection;

  // Vocab-parallel: each shard embeds the tokens in its rows (zeros for the
  // others); the sum is every token's embedding.
  float* x = ws_.layers.front().x_in;
  embedding_forward(x, param(0), d.vocab, dim, inputs, d.vocab_begin);
  TANDEM_RETURN_IF_ERROR(tp_sum(x, rows * dim));

  for (int64_t l = 0; l < s.n_layers; ++l) {
    LayerActivations& a = ws_.layers[static_cast<size_t>(l)];
    rmsnorm_forward(a.attn_in, a.attn_rstd, a.x_in, layer_param(l, kAttentionNorm), rows, dim, s.norm_eps);
    matmul_forward(a.q, a.attn_in, layer_param(l, kWq), rows, dim, d.q_dim, pool_);
    matmul_forward(a.k, a.attn_in, layer_param(l, kWk), rows, dim, d.kv_dim, pool_);
    matmul_forward(a.v, a.attn_in, layer_param(l, kWv), rows, dim, d.kv_dim, pool_);
    rope_forward(a.q, rows, s.seq_len, d.q_heads, hd, s.rope_theta);
    rope_forward(a.k, rows, s.seq_len, d.kv_heads, hd, s.rope_theta);
    attention_forward(a.att, a.probs, a.q, a.k, a.v, attention, pool_);
    matmul_forward(proj, a.att, layer_param(l, kWo), rows, d.q_dim, dim, pool_);  // this rank's heads' share
    TANDEM_RETURN_IF_ERROR(tp_sum(proj, rows * dim));
    add_into(a.x_mid, a.x_in, proj, rows * dim);

    rmsnorm_forward(a.ffn_in, a.ffn_rstd, a.x_mid, layer_param(l, kFfnNorm), rows, dim, s.norm_eps);
    matmul_forward(a.gate, a.ffn_in, layer_param(l, kW1), rows, dim, d.hidden, pool_);
    matmul_forward(a.up, a.ffn_in, layer_param(l, kW3), rows, dim, d.hidden, pool_);
    swiglu_forward(a.act, a.gate, a.up, rows * d.hidden);
    matmul_forward(proj, a.act, layer_param(l, kW2), rows, d.hidden, dim, pool_);  // this rank's columns' share
    TANDEM_RETURN_IF_ERROR(tp_sum(proj, rows * dim));
    float* next = l + 1 < s.n_layers ? ws_.layers[static_cast<size_t>(l + 1)].x_in : ws_.x_final;
    add_into(next, a.x_mid, proj, rows * dim);
  }
  rmsnorm_forward(ws_.final_out, ws_.final_rstd, ws_.x_final, param(final_norm_index(s)), rows, dim, s.norm_eps);
  matmul_forward(ws_.logits, ws_.final_out, param(classifier_index(s)), rows, dim, d.vocab, pool_);
  return Status::Ok();
}

Result<double> TrainModelImpl::cross_entropy_loss(std::span<const int> targets, int64_t rows,
                                                  const float* dlogits_scale) {
  const int64_t vocab = local_.vocab;
  const std::span<const int> row_targets = targets.first(static_cast<size_t>(rows));
  if (comm_ == nullptr) {
    const double sum = cross_entropy(dlogits_scale ? ws_.dlogits : nullptr, ws_.logits, row_targets, rows, vocab,
                                     dlogits_scale ? *dlogits_scale : 0.0f);
    return sum / static_cast<double>(rows);
  }
  // Vocab-parallel (Megatron's): each rank holds some of every row's logits.
  // The row maxima, then the sums of exp and the targets' logits (only the
  // owner of a target's row contributes it, the others add 0) are reduced,
  // so every rank ends with the statistics of the whole row.
  const float* logits = ws_.logits;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits + r * vocab;
    ws_.row_max[r] = *std::max_element(row, row + vocab);
  }
  TANDEM_RETURN_IF_ERROR(comm_->all_reduce_max(std::span<float>(ws_.row_max, static_cast<size_t>(rows))));
  float* sums = ws_.row_sums;  // [2r]: sum of exp(logit - max), [2r + 1]: the target's logit
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits + r * vocab;
    double sum = 0;
    for (int64_t j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(row[j] - ws_.row_max[r]));
    const int64_t target = row_targets[static_cast<size_t>(r)] - local_.vocab_begin;
    sums[2 * r] = static_cast<float>(sum);
    sums[2 * r + 1] = target >= 0 && target < vocab ? row[target] : 0.0f;
  }
  TANDEM_RETURN_IF_ERROR(comm_->all_reduce_sum(std::span<float>(sums, static_cast<size_t>(2 * rows))));
  // Every rank adds the same reduced statistics in the same order: the same loss.
  double total = 0;
  for (int64_t r = 0; r < rows; ++r)
    total += std::log(static_cast<double>(sums[2 * r])) + ws_.row_max[r] - static_cast<double>(sums[2 * r + 1]);
  if (dlogits_scale != nullptr) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = logits + r * vocab;
      float* drow = ws_.dlogits + r * vocab;
      const double inv_sum = 1.0 / static_cast<double>(sums[2 * r]);
      const int64_t target = row_targets[static_cast<size_t>(r)] - local_.vocab_begin;
      for (int64_t j = 0; j < vocab; ++j) {
        const double p = std::exp(static_cast<double>(row[j] - ws_.row_max[r])) * inv_sum;
        drow[j] = static_cast<float>((p - (j == target ? 1.0 : 0.0)) * *dlogits_scale);
      }
    }
  }
  return total / static_cast<double>(rows);
}

}  // namespace tandem::train::detail
