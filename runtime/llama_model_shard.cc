// The sharded side of LlamaModel: checking that a shard's tensors match the
// split it claims, and bringing the last stage's vocab-parallel logits to the
// leader, whole or as each shard's best candidates.
#include <algorithm>
#include <cfloat>
#include <cstring>

#include "runtime/llama_model.h"

namespace tandem {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

Status check_shape(const Tensor& t, const std::string& name, int64_t rows, int64_t cols) {
  if (t.data != nullptr && t.rank == 2 && t.dim(0) == rows && t.dim(1) == cols) return Status::Ok();
  return InvalidArgument("shard: " + name + " is " + (t.data ? t.shape_string() : "missing") +
                         ", the shard needs [" + str(rows) + ", " + str(cols) + "]");
}

// An optional f32 vector: `n` entries, or absent when n is 0.
Status check_vector(const Tensor& t, const std::string& name, int64_t n) {
  if (n == 0 && t.data == nullptr) return Status::Ok();
  if (n > 0 && t.data != nullptr && t.dtype == DType::kF32 && t.numel() == n) return Status::Ok();
  std::string need = "none";
  if (n > 0) need = "f32 of " + str(n);
  return InvalidArgument("shard: " + name + " is " + (t.data ? t.shape_string() : "missing") + ", the config needs " +
                         need);
}

}  // namespace

Status LlamaModel::check_shard() const {
  const LlamaConfig& c = weights_.config;
  const LlamaShard& s = weights_.shard;
  const std::string at = "shard (tp rank " + str(s.tp_rank) + " of " + str(s.tp) + ", stage " +
                         str(s.stage) + " of " + str(s.pp) + ")";
  if (s.tp < 1 || s.pp < 1 || s.tp_rank < 0 || s.tp_rank >= s.tp || s.stage < 0 || s.stage >= s.pp)
    return InvalidArgument(at + ": ranks out of range");
  if (s.tp > 1 && s.pp > 1)
    return Unimplemented("tp=" + str(s.tp) + " with pp=" + str(s.pp) +
                         ": the forward runs tensor or pipeline parallelism, not both yet");
  const int64_t layers = static_cast<int64_t>(weights_.layers.size());
  if (layers < 1 || s.first_layer < 0 || s.first_layer + layers > c.n_layers)
    return InvalidArgument(at + ": layers [" + str(s.first_layer) + ", " + str(s.first_layer + layers) +
                           ") are outside the model's " + str(c.n_layers));
  // KV heads split evenly, or each replicated over tp / n_kv ranks: otherwise
  // a rank's query heads would read KV heads of another group.
  if (c.n_kv_heads % s.tp != 0 && s.tp % c.n_kv_heads != 0)
    return InvalidArgument(at + ": tp=" + str(s.tp) + " neither divides the " + str(c.n_kv_heads) +
                           " KV heads nor is a multiple of them, so a rank's query heads would span KV groups");
  const int64_t kv_heads = std::max<int64_t>(1, c.n_kv_heads / s.tp);
  if (c.n_heads % s.tp != 0 || s.n_heads != c.n_heads / s.tp || s.n_kv_heads != kv_heads ||
      s.n_heads % s.n_kv_heads != 0)
    return InvalidArgument(at + ": holds " + str(s.n_heads) + " query and " + str(s.n_kv_heads) +
                           " KV heads; a tp=" + str(s.tp) + " split of " + str(c.n_heads) + " and " +
                           str(c.n_kv_heads) + " needs " + str(c.n_heads / s.tp) + " and " +
                           str(kv_heads));
  if (s.hidden_dim < 1 || s.hidden_dim > c.hidden_dim)
    return InvalidArgument(at + ": " + str(s.hidden_dim) + " MLP columns of " + str(c.hidden_dim));
  if (s.has_embedding != s.first_stage() || s.has_classifier != s.last_stage())
    return InvalidArgument(at + ": the first stage embeds and the last classifies");
  const auto [vb, ve] = even_split(c.vocab_size, s.tp, s.tp_rank);
  if (s.vocab_begin != vb || s.vocab_end != ve)
    return InvalidArgument(at + ": vocab rows [" + str(s.vocab_begin) + ", " + str(s.vocab_end) +
                           ") differ from the split's [" + str(vb) + ", " + str(ve) + ")");

  const int64_t hd = c.head_dim(), q = s.n_heads * hd, kv = s.n_kv_heads * hd, d = c.dim;
  if (s.has_embedding) TANDEM_RETURN_IF_ERROR(check_shape(weights_.embedding, "embedding", ve - vb, d));
  if (s.has_classifier) TANDEM_RETURN_IF_ERROR(check_shape(weights_.classifier, "classifier", ve - vb, d));
  for (int64_t i = 0; i < layers; ++i) {
    const LlamaLayerWeights& w = weights_.layers[i];
    const std::string l = "layers." + str(s.first_layer + i) + ".";
    TANDEM_RETURN_IF_ERROR(check_shape(w.wq, l + "wq", q, d));
    TANDEM_RETURN_IF_ERROR(check_shape(w.wk, l + "wk", kv, d));
    TANDEM_RETURN_IF_ERROR(check_shape(w.wv, l + "wv", kv, d));
    TANDEM_RETURN_IF_ERROR(check_vector(w.bq, l + "bq", c.attention_bias ? q : 0));
    TANDEM_RETURN_IF_ERROR(check_vector(w.bk, l + "bk", c.attention_bias ? kv : 0));
    TANDEM_RETURN_IF_ERROR(check_vector(w.bv, l + "bv", c.attention_bias ? kv : 0));
    TANDEM_RETURN_IF_ERROR(check_vector(w.q_norm, l + "q_norm", c.qk_norm ? hd : 0));
    TANDEM_RETURN_IF_ERROR(check_vector(w.k_norm, l + "k_norm", c.qk_norm ? hd : 0));
    TANDEM_RETURN_IF_ERROR(check_shape(w.wo, l + "wo", d, q));
    TANDEM_RETURN_IF_ERROR(check_shape(w.w_gate, l + "w_gate", s.hidden_dim, d));
    TANDEM_RETURN_IF_ERROR(check_shape(w.w_up, l + "w_up", s.hidden_dim, d));
    TANDEM_RETURN_IF_ERROR(check_shape(w.w_down, l + "w_down", d, s.hidden_dim));
  }
  return Status::Ok();
}

Status LlamaModel::local_logits_to_host() {
  return backend_.copy_to_host(local_logits_.data(), logits_, logits_.bytes());
}

Status LlamaModel::gather_top_k(int k, std::vector<TokenLogit>& best) {
  const LlamaShard& s = weights_.shard;
  const size_t want = static_cast<size_t>(std::min<int64_t>(k, weights_.config.vocab_size));
  if (s.last_stage()) {
    TANDEM_RETURN_IF_ERROR(local_logits_to_host());
    best_candidates(local_logits_.data(), s.vocab_end - s.vocab_begin, s.vocab_begin,
                    static_cast<size_t>(k), best);
    if (s.tp > 1) {
      // Every shard sends exactly k entries (a short shard pads with id -1),
      // so the gather has one size; the k best of the union are the global k
      // best, as each global winner is among its own shard's k best.
      best.resize(static_cast<size_t>(k), TokenLogit{-FLT_MAX, -1});
      candidates_.resize(best.size() * s.tp);
      TANDEM_RETURN_IF_ERROR(comm_->all_gather_host(best.data(), candidates_.data(),
                                                    best.size() * sizeof(TokenLogit)));
      best.clear();
      for (const TokenLogit& c : candidates_)
        if (c.id >= 0) best.push_back(c);
      const size_t keep = std::min(want, best.size());
      std::partial_sort(best.begin(), best.begin() + static_cast<std::ptrdiff_t>(keep), best.end(),
                        better_candidate);
      best.resize(keep);
    }
  }
  if (s.pp == 1) return Status::Ok();
  best.resize(want);
  if (leader()) return comm_->recv_from_last_stage(best.data(), want * sizeof(TokenLogit));
  if (s.last_stage() && s.tp_rank == 0) return comm_->send_to_leader(best.data(), want * sizeof(TokenLogit));
  return Status::Ok();
}

Status LlamaModel::gather_logits(std::span<float> logits) {
  const LlamaShard& s = weights_.shard;
  const int64_t vocab = weights_.config.vocab_size;
  // Where the whole vocabulary is assembled: the caller's span on the leader,
  // a scratch row on the last stage's tp rank 0 that sends it on.
  float* whole = leader() ? logits.data() : gathered_logits_.data();
  if (s.last_stage()) {
    TANDEM_RETURN_IF_ERROR(local_logits_to_host());
    if (s.tp == 1) {
      std::memcpy(whole, local_logits_.data(), vocab * sizeof(float));
    } else {
      // Shards differ by at most one row: each sends a row padded to the
      // largest, and the padding is dropped here.
      const int64_t padded = (vocab + s.tp - 1) / s.tp;
      std::vector<float>& all = gathered_logits_;
      TANDEM_RETURN_IF_ERROR(
          comm_->all_gather_host(local_logits_.data(), all.data(), padded * sizeof(float)));
      if (leader() || s.tp_rank == 0) {
        // Forwards: `whole` may be `all` itself, and each shard moves down.
        for (int r = 0; r < s.tp; ++r) {
          const auto [b, e] = even_split(vocab, s.tp, r);
          std::memmove(whole + b, all.data() + r * padded, (e - b) * sizeof(float));
        }
      }
    }
  }
  if (s.pp == 1) return Status::Ok();
  if (leader()) return comm_->recv_from_last_stage(logits.data(), vocab * sizeof(float));
  if (s.last_stage() && s.tp_rank == 0) return comm_->send_to_leader(whole, vocab * sizeof(float));
  return Status::Ok();
}

}  // namespace tandem
