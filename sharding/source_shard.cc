#include "sharding/source_shard.h"

#include <string>

namespace tandem::sharding {
namespace {

std::string shape_text(const LlamaConfig& c) {
  return "dim " + std::to_string(c.dim) + ", hidden " + std::to_string(c.hidden_dim) + ", " +
         std::to_string(c.n_layers) + " layers, " + std::to_string(c.n_heads) + "/" +
         std::to_string(c.n_kv_heads) + " heads of " + std::to_string(c.head_dim()) + ", vocab " +
         std::to_string(c.vocab_size) + (c.attention_bias ? ", attention biases" : "") +
         (c.qk_norm ? ", Q/K norms" : "");
}

bool same_shape(const LlamaConfig& a, const LlamaConfig& b) {
  return a.dim == b.dim && a.hidden_dim == b.hidden_dim && a.n_layers == b.n_layers &&
         a.n_heads == b.n_heads && a.n_kv_heads == b.n_kv_heads && a.vocab_size == b.vocab_size &&
         a.shared_classifier == b.shared_classifier && a.head_dim() == b.head_dim() &&
         a.attention_bias == b.attention_bias && a.qk_norm == b.qk_norm;
}

}  // namespace

Result<ModelPart> model_part_for_rank(const ShardPlan& plan, int rank) {
  if (rank < 0 || rank >= static_cast<int>(plan.ranks.size()))
    return InvalidArgument("rank " + std::to_string(rank) + " is outside the plan's " +
                           std::to_string(plan.ranks.size()) + " ranks");
  const RankShard& me = plan.ranks[static_cast<size_t>(rank)];
  ModelPart part;
  LlamaShard& s = part.shard;
  s.tp = plan.tp;
  s.tp_rank = me.tp_rank;
  s.pp = plan.pp;
  s.stage = me.stage;
  s.first_layer = me.layers.begin;
  s.n_heads = me.q_heads.size();
  s.n_kv_heads = me.kv_heads.size();
  s.hidden_dim = me.hidden.size();
  s.vocab_begin = me.vocab.begin;
  s.vocab_end = me.vocab.end;
  s.has_embedding = me.holds_embedding;
  s.has_classifier = me.holds_classifier;
  part.n_layers = me.layers.size();
  part.q_head_begin = me.q_heads.begin;
  part.kv_head_begin = me.kv_heads.begin;
  part.hidden_begin = me.hidden.begin;
  return part;
}

Result<LlamaWeights> load_source_shard(const ModelSource& source, const ShardPlan& plan, int rank,
                                       const AssemblyOptions& options, AssemblyReport* report) {
  TANDEM_ASSIGN_OR_RETURN(const ModelPart part, model_part_for_rank(plan, rank));
  if (!same_shape(source.config, plan.model))
    return FailedPrecondition(source.path + " holds a model of shape (" + shape_text(source.config) +
                              ") but the plan is for (" + shape_text(plan.model) + ")");
  return assemble_weights(source, part, options, report);
}

}  // namespace tandem::sharding
