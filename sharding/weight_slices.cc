#include "sharding/weight_slices.h"

#include <string>

#include "runtime/llama2c_loader.h"

namespace tandem::sharding {
namespace {

constexpr uint64_t kF32Bytes = sizeof(float);

std::string str(int64_t v) { return std::to_string(v); }

// A plan is a plain struct a caller may have built or edited by hand: check
// every range against the model before using it for offsets.
Status check_shard(const ShardPlan& plan, const RankShard& s) {
  const LlamaConfig& m = plan.model;
  auto in = [&](const char* what, const IndexRange& r, int64_t limit) -> Status {
    if (r.begin < 0 || r.begin > r.end || r.end > limit)
      return InvalidArgument("rank " + str(s.rank) + ": " + what + " [" + str(r.begin) + ", " +
                             str(r.end) + ") is outside [0, " + str(limit) + ")");
    return Status::Ok();
  };
  TANDEM_RETURN_IF_ERROR(in("layers", s.layers, m.n_layers));
  TANDEM_RETURN_IF_ERROR(in("query heads", s.q_heads, m.n_heads));
  TANDEM_RETURN_IF_ERROR(in("KV heads", s.kv_heads, m.n_kv_heads));
  TANDEM_RETURN_IF_ERROR(in("MLP columns", s.hidden, m.hidden_dim));
  return in("vocab rows", s.vocab, m.vocab_size);
}

// Walks the file in llama2.c order; each kind of tensor is `count` tensors of
// [rows, cols] f32 back to back.
class Walker {
 public:
  explicit Walker(std::vector<WeightSlice>* out) : out_(out) {}

  uint64_t cursor() const { return cursor_; }
  uint64_t skip(int64_t count, int64_t rows, int64_t cols) {
    const uint64_t start = cursor_;
    cursor_ += static_cast<uint64_t>(count) * tensor_bytes(rows, cols);
    return start;
  }
  // Emits rows `r` x columns `c` of tensor `index` of a kind starting at `base`.
  void take(uint64_t base, int64_t index, std::string name, int64_t layer, int64_t rows,
            int64_t cols, IndexRange r, IndexRange c) {
    if (r.size() == 0 || c.size() == 0) return;
    const uint64_t row_bytes = static_cast<uint64_t>(cols) * kF32Bytes;
    WeightSlice s;
    s.tensor = std::move(name);
    s.layer = layer;
    s.tensor_rows = rows;
    s.tensor_cols = cols;
    s.row_range = r;
    s.col_range = c;
    s.offset = base + static_cast<uint64_t>(index) * tensor_bytes(rows, cols) +
               static_cast<uint64_t>(r.begin) * row_bytes +
               static_cast<uint64_t>(c.begin) * kF32Bytes;
    s.rows = static_cast<uint64_t>(r.size());
    s.row_stride = row_bytes;
    s.bytes_per_row = static_cast<uint64_t>(c.size()) * kF32Bytes;
    out_->push_back(std::move(s));
  }

 private:
  static uint64_t tensor_bytes(int64_t rows, int64_t cols) {
    return static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) * kF32Bytes;
  }
  std::vector<WeightSlice>* out_;
  uint64_t cursor_ = kLlama2cHeaderBytes;
};

}  // namespace

Result<std::vector<WeightSlice>> llama2c_weight_slices(const ShardPlan& plan, int rank) {
  // validate() bounds every dimension, so no offset below can overflow: the
  // largest file is under 2^51 bytes.
  TANDEM_RETURN_IF_ERROR(validate(plan.model, "plan.model"));
  if (plan.weight_dtype != DType::kF32)
    return InvalidArgument("llama2.c checkpoints store f32, but the plan is for " +
                           std::string(dtype_name(plan.weight_dtype)));
  if (rank < 0 || static_cast<size_t>(rank) >= plan.ranks.size())
    return InvalidArgument("rank " + str(rank) + " is not in the plan's " +
                           str(static_cast<int64_t>(plan.ranks.size())) + " ranks");
  const RankShard& s = plan.ranks[rank];
  TANDEM_RETURN_IF_ERROR(check_shard(plan, s));

  const LlamaConfig& m = plan.model;
  const int64_t d = m.dim, hd = m.head_dim(), L = m.n_layers, hid = m.hidden_dim;
  const int64_t q_dim = m.n_heads * hd, kv_dim = m.kv_dim();
  const IndexRange all_d{0, d}, one_row{0, 1};
  const IndexRange q_rows{s.q_heads.begin * hd, s.q_heads.end * hd};
  const IndexRange kv_rows{s.kv_heads.begin * hd, s.kv_heads.end * hd};

  std::vector<WeightSlice> out;
  Walker w(&out);
  const uint64_t embedding = w.skip(1, m.vocab_size, d);
  if (s.holds_embedding) {
    w.take(embedding, 0, "embedding", -1, m.vocab_size, d, s.vocab, all_d);
  } else if (m.shared_classifier && s.holds_classifier) {
    // A last stage that is not also the first reads its own copy of its rows.
    w.take(embedding, 0, "classifier", -1, m.vocab_size, d, s.vocab, all_d);
  }

  // One kind of per-layer tensor: all L in the file, this stage's layers taken.
  auto per_layer = [&](const char* kind, int64_t rows, int64_t cols, IndexRange r, IndexRange c) {
    const uint64_t base = w.skip(L, rows, cols);
    for (int64_t l = s.layers.begin; l < s.layers.end; ++l)
      w.take(base, l, "layers." + str(l) + "." + kind, l, rows, cols, r, c);
  };
  per_layer("attn_norm", 1, d, one_row, all_d);
  per_layer("wq", q_dim, d, q_rows, all_d);
  per_layer("wk", kv_dim, d, kv_rows, all_d);
  per_layer("wv", kv_dim, d, kv_rows, all_d);
  per_layer("wo", d, q_dim, all_d, q_rows);  // the query heads' columns
  per_layer("ffn_norm", 1, d, one_row, all_d);
  per_layer("w1", hid, d, s.hidden, all_d);
  per_layer("w2", d, hid, all_d, s.hidden);  // the MLP's columns
  per_layer("w3", hid, d, s.hidden, all_d);

  const uint64_t final_norm = w.skip(1, 1, d);
  if (s.holds_classifier) w.take(final_norm, 0, "final_norm", -1, 1, d, one_row, all_d);
  w.skip(1, m.max_seq_len, hd);  // legacy RoPE tables: recomputed, never read
  if (!m.shared_classifier) {
    const uint64_t classifier = w.skip(1, m.vocab_size, d);
    if (s.holds_classifier)
      w.take(classifier, 0, "classifier", -1, m.vocab_size, d, s.vocab, all_d);
  }
  return out;
}

Result<std::vector<FileRange>> llama2c_unread_ranges(const LlamaConfig& m) {
  TANDEM_ASSIGN_OR_RETURN(uint64_t file_bytes, llama2c_expected_bytes(m, "model"));
  const uint64_t rope = static_cast<uint64_t>(m.max_seq_len) *
                        static_cast<uint64_t>(m.head_dim()) * kF32Bytes;
  const uint64_t classifier =
      m.shared_classifier ? 0
                          : static_cast<uint64_t>(m.vocab_size) * static_cast<uint64_t>(m.dim) *
                                kF32Bytes;
  return std::vector<FileRange>{
      {"header", 0, kLlama2cHeaderBytes},
      {"rope_tables", file_bytes - classifier - rope, rope},
  };
}

}  // namespace tandem::sharding
