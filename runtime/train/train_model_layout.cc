// The training model's shapes, its flat parameter layout per tensor-parallel
// rank, and the seeded initialisation that makes shards slices of tp=1.
#include <cmath>
#include <numbers>
#include <string>

#include "runtime/hash.h"
#include "runtime/llama_weights.h"
#include "runtime/train/train_model_impl.h"

namespace tandem::train {

Status validate_train_shape(const TrainShape& s) {
  auto in_range = [](const char* name, int64_t v, int64_t max) -> Status {
    if (v < 1 || v > max)
      return InvalidArgument(std::string("train shape: ") + name + "=" + std::to_string(v) + " is outside [1, " +
                             std::to_string(max) + "]");
    return Status::Ok();
  };
  // The llama2.c limits, so whatever trains can be exported and loaded.
  TANDEM_RETURN_IF_ERROR(in_range("dim", s.dim, kMaxModelDim));
  TANDEM_RETURN_IF_ERROR(in_range("n_layers", s.n_layers, kMaxLayers));
  TANDEM_RETURN_IF_ERROR(in_range("n_heads", s.n_heads, kMaxHeads));
  TANDEM_RETURN_IF_ERROR(in_range("n_kv_heads", s.n_kv_heads, kMaxHeads));
  TANDEM_RETURN_IF_ERROR(in_range("hidden_dim", s.hidden_dim, 8 * kMaxModelDim));
  TANDEM_RETURN_IF_ERROR(in_range("vocab_size", s.vocab_size, kMaxVocab));
  TANDEM_RETURN_IF_ERROR(in_range("seq_len", s.seq_len, kMaxSeqLen));
  if (s.dim % s.n_heads != 0)
    return InvalidArgument("train shape: dim=" + std::to_string(s.dim) + " is not a multiple of n_heads=" +
                           std::to_string(s.n_heads));
  if (s.n_heads % s.n_kv_heads != 0)
    return InvalidArgument("train shape: n_heads=" + std::to_string(s.n_heads) +
                           " is not a multiple of n_kv_heads=" + std::to_string(s.n_kv_heads));
  if (s.head_dim() % 2 != 0)
    return InvalidArgument("train shape: head_dim=" + std::to_string(s.head_dim()) +
                           " is odd; rotary embeddings rotate pairs");
  if (!(s.norm_eps > 0.0f) || !std::isfinite(s.norm_eps))
    return InvalidArgument("train shape: norm_eps must be a positive finite number");
  if (!(s.rope_theta > 0.0f) || !std::isfinite(s.rope_theta))
    return InvalidArgument("train shape: rope_theta must be a positive finite number");
  return Status::Ok();
}

Status check_tensor_parallel(const TrainShape& shape, TensorParallelRank tp) {
  const std::string split = "tensor parallelism tp=" + std::to_string(tp.tp);
  if (tp.tp < 1) return InvalidArgument(split + ": tp must be at least 1");
  if (tp.rank < 0 || tp.rank >= tp.tp)
    return InvalidArgument(split + ": rank " + std::to_string(tp.rank) + " is outside [0, " +
                           std::to_string(tp.tp) + ")");
  if (shape.n_heads % tp.tp != 0)
    return InvalidArgument(split + " does not divide n_heads=" + std::to_string(shape.n_heads));
  if (shape.n_kv_heads % tp.tp != 0)
    return InvalidArgument(split + " does not divide n_kv_heads=" + std::to_string(shape.n_kv_heads) +
                           " (training does not replicate KV heads)");
  if (tp.tp > shape.hidden_dim)
    return InvalidArgument(split + " exceeds hidden_dim=" + std::to_string(shape.hidden_dim));
  if (tp.tp > shape.vocab_size)
    return InvalidArgument(split + " exceeds vocab_size=" + std::to_string(shape.vocab_size));
  return Status::Ok();
}

namespace detail {

LocalDims local_dims(const TrainShape& shape, TensorParallelRank tp) {
  LocalDims d;
  d.q_heads = shape.n_heads / tp.tp;
  d.kv_heads = shape.n_kv_heads / tp.tp;
  d.q_dim = d.q_heads * shape.head_dim();
  d.kv_dim = d.kv_heads * shape.head_dim();
  const auto [hidden_begin, hidden_end] = even_split(shape.hidden_dim, tp.tp, tp.rank);
  d.hidden_begin = hidden_begin;
  d.hidden = hidden_end - hidden_begin;
  const auto [vocab_begin, vocab_end] = even_split(shape.vocab_size, tp.tp, tp.rank);
  d.vocab_begin = vocab_begin;
  d.vocab = vocab_end - vocab_begin;
  return d;
}

std::vector<ParamTensor> shard_layout(const TrainShape& s, TensorParallelRank tp) {
  const LocalDims d = local_dims(s, tp);
  std::vector<ParamTensor> out;
  int64_t offset = 0;
  // A [full_rows, full_cols] tensor of which the shard holds rows
  // [row_begin, +rows) and columns [col_begin, +cols).
  auto add = [&](std::string name, int layer, int64_t full_rows, int64_t full_cols, int64_t row_begin,
                 int64_t rows, int64_t col_begin, int64_t cols, bool decay) {
    ParamTensor t;
    t.name = std::move(name);
    t.offset = offset;
    t.rows = rows;
    t.cols = cols;
    t.full_rows = full_rows;
    t.full_cols = full_cols;
    t.row_begin = row_begin;
    t.col_begin = col_begin;
    t.layer = layer;
    t.decay = decay;
    t.replicated = !decay;  // the norms, the only tensors that do not decay
    offset += t.numel();
    out.push_back(std::move(t));
  };
  auto whole = [&](std::string name, int layer, int64_t n) { add(std::move(name), layer, 1, n, 0, 1, 0, n, false); };
  // Split by rows (the output features) or by columns (the input features).
  auto rows_of = [&](std::string name, int layer, int64_t full_rows, int64_t begin, int64_t rows, int64_t cols) {
    add(std::move(name), layer, full_rows, cols, begin, rows, 0, cols, true);
  };
  auto cols_of = [&](std::string name, int layer, int64_t rows, int64_t full_cols, int64_t begin, int64_t cols) {
    add(std::move(name), layer, rows, full_cols, 0, rows, begin, cols, true);
  };
  const int64_t hd = s.head_dim();
  rows_of("tok_embeddings", -1, s.vocab_size, d.vocab_begin, d.vocab, s.dim);
  for (int64_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    const int layer = static_cast<int>(l);
    whole(p + "attention_norm", layer, s.dim);
    rows_of(p + "attention.wq", layer, s.n_heads * hd, tp.rank * d.q_dim, d.q_dim, s.dim);
    rows_of(p + "attention.wk", layer, s.n_kv_heads * hd, tp.rank * d.kv_dim, d.kv_dim, s.dim);
    rows_of(p + "attention.wv", layer, s.n_kv_heads * hd, tp.rank * d.kv_dim, d.kv_dim, s.dim);
    cols_of(p + "attention.wo", layer, s.dim, s.n_heads * hd, tp.rank * d.q_dim, d.q_dim);
    whole(p + "ffn_norm", layer, s.dim);
    rows_of(p + "feed_forward.w1", layer, s.hidden_dim, d.hidden_begin, d.hidden, s.dim);
    cols_of(p + "feed_forward.w2", layer, s.dim, s.hidden_dim, d.hidden_begin, d.hidden);
    rows_of(p + "feed_forward.w3", layer, s.hidden_dim, d.hidden_begin, d.hidden, s.dim);
  }
  const int last = static_cast<int>(s.n_layers);
  whole("norm", last, s.dim);
  rows_of("output", last, s.vocab_size, d.vocab_begin, d.vocab, s.dim);
  return out;
}

int64_t total_numel(const std::vector<ParamTensor>& layout) {
  return layout.empty() ? 0 : layout.back().offset + layout.back().numel();
}

namespace {

// A standard normal that depends on its three keys only (Box-Muller on two
// uniforms drawn from one hash chain), so any rank can draw any element.
double keyed_normal(uint64_t seed, uint64_t tensor, uint64_t element) {
  const uint64_t h = splitmix64(splitmix64(splitmix64(seed) ^ tensor) ^ element);
  const double u1 = static_cast<double>((h >> 11) + 1) * 0x1.0p-53;  // (0, 1]: log stays finite
  const double u2 = static_cast<double>(splitmix64(h) >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace

void init_params(const TrainShape& shape, const std::vector<ParamTensor>& layout, uint64_t seed,
                 std::span<float> params) {
  // nanoGPT: the residual projections are scaled down so the residual
  // stream's variance does not grow with depth.
  const double std_matrix = 0.02;
  const double std_residual = 0.02 / std::sqrt(2.0 * static_cast<double>(shape.n_layers));
  for (size_t i = 0; i < layout.size(); ++i) {
    const ParamTensor& t = layout[i];
    float* out = params.data() + t.offset;
    if (t.replicated) {
      for (int64_t e = 0; e < t.numel(); ++e) out[e] = 1.0f;
      continue;
    }
    const bool residual = t.name.ends_with(".wo") || t.name.ends_with(".w2");
    const double stddev = residual ? std_residual : std_matrix;
    for (int64_t r = 0; r < t.rows; ++r) {
      const uint64_t full_row = static_cast<uint64_t>(t.row_begin + r);
      for (int64_t c = 0; c < t.cols; ++c) {
        const uint64_t element = full_row * static_cast<uint64_t>(t.full_cols) + static_cast<uint64_t>(t.col_begin + c);
        out[r * t.cols + c] = static_cast<float>(stddev * keyed_normal(seed, i, element));
      }
    }
  }
}

}  // namespace detail

std::vector<ParamTensor> full_layout(const TrainShape& shape) {
  // An invalid shape has no layout (its head_dim may not even be defined).
  if (!validate_train_shape(shape).ok()) return {};
  return detail::shard_layout(shape, {1, 0});
}

}  // namespace tandem::train
