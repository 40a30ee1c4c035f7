#include "sharding/shard_plan.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace tandem::sharding {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

// Part `i` of `n` items split `parts` ways, the first n % parts parts one larger.
IndexRange split(int64_t n, int64_t parts, int64_t i) {
  const auto [begin, end] = even_split(n, parts, i);
  return {begin, end};
}

bool is_weight_dtype(DType d) {
  switch (d) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4K:
      return true;
    default:
      return false;
  }
}

Status check_heads(const LlamaConfig& m, int tp) {
  const int64_t h = m.n_heads, kv = m.n_kv_heads;
  const std::string t = "tp=" + str(tp);
  if (h % tp != 0 && kv % tp != 0)
    return InvalidArgument(t + " divides neither the " + str(h) + " query heads nor the " +
                           str(kv) + " KV heads");
  // validate() demands kv | h, so from here on tp divides h.
  if (kv % tp != 0 && tp % kv != 0)
    return InvalidArgument(t + " splits the " + str(h) + " query heads but not the " + str(kv) +
                           " KV heads: a rank would hold query heads of two KV groups; tp must "
                           "divide " + str(kv) + " or be a multiple of it");
  return Status::Ok();
}

// Block dtypes store rows in blocks of block_elems: a split must not cut one.
Status check_blocks(const LlamaConfig& m, int tp, DType dtype) {
  const int64_t b = dtype_block_elems(dtype);
  if (b == 1) return Status::Ok();
  const std::string d(dtype_name(dtype));
  auto need = [&](int64_t n, const std::string& what) -> Status {
    if (n % b == 0) return Status::Ok();
    return InvalidArgument(d + " stores blocks of " + str(b) + " elements but " + what + " is " +
                           str(n));
  };
  TANDEM_RETURN_IF_ERROR(need(m.dim, "dim (the row length of wq, wk, wv, w1, w3, embedding)"));
  TANDEM_RETURN_IF_ERROR(
      need(m.n_heads / tp * m.head_dim(), "each rank's wo column slice (tp=" + str(tp) + ")"));
  return need(m.hidden_dim, "hidden_dim (the MLP split's unit)");
}

uint64_t rank_bytes(const LlamaConfig& m, const RankShard& s, DType dt) {
  const int64_t d = m.dim, hd = m.head_dim();
  const int64_t q = s.q_heads.size() * hd, kv = s.kv_heads.size() * hd, hid = s.hidden.size();
  const uint64_t norm = matrix_bytes(1, d, DType::kF32);
  // Biases and Q/K norms are f32 like the norms; a bias follows its rows.
  const uint64_t extras = (m.attention_bias ? matrix_bytes(1, q + 2 * kv, DType::kF32) : 0) +
                          (m.qk_norm ? matrix_bytes(2, hd, DType::kF32) : 0);
  const uint64_t layer = 2 * norm + extras + matrix_bytes(q, d, dt) + 2 * matrix_bytes(kv, d, dt) +
                         matrix_bytes(d, q, dt) + 2 * matrix_bytes(hid, d, dt) + matrix_bytes(d, hid, dt);
  uint64_t bytes = static_cast<uint64_t>(s.layers.size()) * layer;
  const uint64_t vocab_rows = matrix_bytes(s.vocab.size(), d, dt);
  if (s.holds_embedding) bytes += vocab_rows;
  if (s.holds_classifier) {
    bytes += norm;
    // A shared table already held for the embedding serves as the classifier.
    if (!(m.shared_classifier && s.holds_embedding)) bytes += vocab_rows;
  }
  return bytes;
}

uint64_t model_bytes(const LlamaConfig& m, DType dt) {
  RankShard whole;
  whole.layers = {0, m.n_layers};
  whole.q_heads = {0, m.n_heads};
  whole.kv_heads = {0, m.n_kv_heads};
  whole.hidden = {0, m.hidden_dim};
  whole.vocab = {0, m.vocab_size};
  whole.holds_embedding = whole.holds_classifier = true;
  return rank_bytes(m, whole, dt);
}

std::string gib(uint64_t bytes) {
  const double g = static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", g);
  return buf;
}

}  // namespace

uint64_t matrix_bytes(int64_t rows, int64_t cols, DType dtype) {
  return static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols / dtype_block_elems(dtype)) *
         static_cast<uint64_t>(dtype_block_bytes(dtype));
}

Result<ShardPlan> make_shard_plan(const LlamaConfig& model, int tp, int pp,
                                  const std::vector<uint64_t>& node_memory_bytes,
                                  DType weight_dtype) {
  // Bounds every dimension (llama_weights.h limits), so the byte counts below
  // stay far below 2^63: at most 2^12 layers * 2^17 dim * 2^20 hidden * 4.
  // A shape that does not validate is the caller's input: InvalidArgument,
  // whatever validate() calls it, with its reason.
  if (Status s = validate(model, "model"); !s.ok()) return InvalidArgument(s.message());
  if (tp < 1 || pp < 1)
    return InvalidArgument("tp=" + str(tp) + " pp=" + str(pp) + ": both must be at least 1");
  if (!is_weight_dtype(weight_dtype))
    return InvalidArgument("dtype " + std::string(dtype_name(weight_dtype)) +
                           " is not a weight type (f32, f16, bf16, q8_0, q4_0, q4_k)");
  if (pp > model.n_layers)
    return InvalidArgument("pp=" + str(pp) + " is more stages than the model's " +
                           str(model.n_layers) + " layers");
  TANDEM_RETURN_IF_ERROR(check_heads(model, tp));
  TANDEM_RETURN_IF_ERROR(check_blocks(model, tp, weight_dtype));
  const int64_t world = static_cast<int64_t>(tp) * pp;  // tp <= n_heads, pp <= n_layers
  if (!node_memory_bytes.empty() && static_cast<int64_t>(node_memory_bytes.size()) != world)
    return InvalidArgument("tp*pp=" + str(world) + " but " + str(node_memory_bytes.size()) +
                           " nodes: one rank runs on each node");

  ShardPlan plan;
  plan.model = model;
  plan.tp = tp;
  plan.pp = pp;
  plan.weight_dtype = weight_dtype;
  plan.total_weight_bytes = model_bytes(model, weight_dtype);
  const int64_t block = dtype_block_elems(weight_dtype);
  const int64_t kv = model.n_kv_heads, q_per_rank = model.n_heads / tp;
  plan.kv_replication = tp > kv ? static_cast<int>(tp / kv) : 1;
  if (tp > kv)
    plan.notes.push_back("tp=" + str(tp) + " > " + str(kv) + " KV heads: each KV head is "
                         "replicated on " + str(plan.kv_replication) + " ranks");
  if (model.n_layers % pp != 0)
    plan.notes.push_back(str(model.n_layers) + " layers over pp=" + str(pp) +
                         ": the first " + str(model.n_layers % pp) + " stage(s) run one more");
  if ((model.hidden_dim / block) % tp != 0)
    plan.notes.push_back("hidden_dim=" + str(model.hidden_dim) + " over tp=" + str(tp) +
                         ": MLP slices differ by " + str(block) + " column(s)");
  if (model.vocab_size % tp != 0)
    plan.notes.push_back("vocab=" + str(model.vocab_size) + " over tp=" + str(tp) +
                         ": the first " + str(model.vocab_size % tp) +
                         " rank(s) of a stage hold one more row; gathered logits pad to " +
                         str((model.vocab_size + tp - 1) / tp));

  for (int stage = 0; stage < pp; ++stage) {
    for (int t = 0; t < tp; ++t) {
      RankShard s;
      s.rank = stage * tp + t;
      s.stage = stage;
      s.tp_rank = t;
      s.layers = split(model.n_layers, pp, stage);
      s.q_heads = {t * q_per_rank, (t + 1) * q_per_rank};
      // Query head h reads KV head h / (n_heads / n_kv_heads): the KV heads of
      // this rank's query heads, one (replicated) when tp > n_kv_heads.
      const int64_t group = model.n_heads / kv;
      s.kv_heads = {s.q_heads.begin / group, (s.q_heads.end - 1) / group + 1};
      const IndexRange units = split(model.hidden_dim / block, tp, t);
      s.hidden = {units.begin * block, units.end * block};
      s.vocab = split(model.vocab_size, tp, t);
      s.holds_embedding = stage == 0;
      s.holds_classifier = stage == pp - 1;
      s.weight_bytes = rank_bytes(model, s, weight_dtype);
      if (!node_memory_bytes.empty()) {
        s.node_memory_bytes = node_memory_bytes[s.rank];
        s.fits = s.weight_bytes <= s.node_memory_bytes;
        if (!s.fits)
          plan.notes.push_back("rank " + str(s.rank) + " needs " + gib(s.weight_bytes) +
                               " of weights but its node has " + gib(s.node_memory_bytes));
      }
      plan.fits = plan.fits && s.fits;
      plan.ranks.push_back(s);
    }
  }
  return plan;
}

}  // namespace tandem::sharding
