#include "runtime/llama2c_loader.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "runtime/mapped_file.h"

namespace tandem {
namespace {

std::string describe(const LlamaConfig& c) {
  return "dim=" + std::to_string(c.dim) + " hidden_dim=" + std::to_string(c.hidden_dim) +
         " n_layers=" + std::to_string(c.n_layers) + " n_heads=" + std::to_string(c.n_heads) +
         " n_kv_heads=" + std::to_string(c.n_kv_heads) + " vocab_size=" +
         std::to_string(c.vocab_size) + " seq_len=" + std::to_string(c.max_seq_len);
}

// Element counts in llama2.c's file order. Every factor is bounded by
// validate(), so the products fit comfortably in int64.
struct Llama2cLayout {
  int64_t embedding, attn_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3, final_norm, rope_tables,
      classifier;
  int64_t total() const {
    return embedding + attn_norm + wq + wk + wv + wo + ffn_norm + w1 + w2 + w3 + final_norm +
           rope_tables + classifier;
  }
};

Llama2cLayout layout_of(const LlamaConfig& c) {
  const int64_t L = c.n_layers, d = c.dim, q_dim = c.n_heads * c.head_dim();
  Llama2cLayout l{};
  l.embedding = c.vocab_size * d;
  l.attn_norm = L * d;
  l.wq = L * d * q_dim;
  l.wk = L * d * c.kv_dim();
  l.wv = L * d * c.kv_dim();
  l.wo = L * q_dim * d;
  l.ffn_norm = L * d;
  l.w1 = L * d * c.hidden_dim;
  l.w2 = L * c.hidden_dim * d;
  l.w3 = L * d * c.hidden_dim;
  l.final_norm = d;
  // run.c skips the legacy freq_cis_real and freq_cis_imag tables.
  l.rope_tables = c.max_seq_len * c.head_dim();
  l.classifier = c.shared_classifier ? 0 : c.vocab_size * d;
  return l;
}

}  // namespace

int64_t LlamaConfig::parameter_count() const {
  const int64_t per_layer = 2 * dim + dim * q_dim() * 2 + 2 * dim * kv_dim() + 3 * dim * hidden_dim +
                            (attention_bias ? q_dim() + 2 * kv_dim() : 0) + (qk_norm ? 2 * head_dim() : 0);
  return vocab_size * dim * (shared_classifier ? 1 : 2) + n_layers * per_layer + dim;
}

Status check_context(const LlamaConfig& c, int64_t context) {
  if (context < 1 || context > c.max_seq_len)
    return InvalidArgument("context " + std::to_string(context) + " is outside [1, " + std::to_string(c.max_seq_len) +
                           "], the model's trained context");
  const int64_t window = context_limit(c);
  if (context > window)
    return InvalidArgument("context " + std::to_string(context) + " exceeds the model's sliding attention window of " +
                           std::to_string(window) + " positions; tandem's attention sees every position, which "
                           "computes this model only within its window (run with a context up to " +
                           std::to_string(window) + ")");
  return Status::Ok();
}

Status validate(const LlamaConfig& c, std::string_view source) {
  const std::string where(source);
  auto in_range = [&](const char* name, int64_t v, int64_t max) -> Status {
    if (v <= 0 || v > max)
      return OutOfRange(where + ": " + name + "=" + std::to_string(v) + " is outside [1, " +
                        std::to_string(max) + "]");
    return Status::Ok();
  };
  TANDEM_RETURN_IF_ERROR(in_range("dim", c.dim, kMaxModelDim));
  TANDEM_RETURN_IF_ERROR(in_range("hidden_dim", c.hidden_dim, 8 * kMaxModelDim));
  TANDEM_RETURN_IF_ERROR(in_range("n_layers", c.n_layers, kMaxLayers));
  TANDEM_RETURN_IF_ERROR(in_range("n_heads", c.n_heads, kMaxHeads));
  TANDEM_RETURN_IF_ERROR(in_range("n_kv_heads", c.n_kv_heads, kMaxHeads));
  TANDEM_RETURN_IF_ERROR(in_range("vocab_size", c.vocab_size, kMaxVocab));
  TANDEM_RETURN_IF_ERROR(in_range("seq_len", c.max_seq_len, kMaxSeqLen));
  if (c.explicit_head_dim == 0 && c.dim % c.n_heads != 0)
    return InvalidArgument(where + ": dim=" + std::to_string(c.dim) +
                           " is not a multiple of n_heads=" + std::to_string(c.n_heads));
  if (c.explicit_head_dim != 0) TANDEM_RETURN_IF_ERROR(in_range("head_dim", c.explicit_head_dim, kMaxHeadDim));
  if (c.n_heads % c.n_kv_heads != 0)
    return InvalidArgument(where + ": n_heads=" + std::to_string(c.n_heads) +
                           " is not a multiple of n_kv_heads=" + std::to_string(c.n_kv_heads));
  if (c.head_dim() % 2 != 0)
    return InvalidArgument(where + ": head_dim=" + std::to_string(c.head_dim()) +
                           " is odd; rotary embeddings rotate pairs");
  if (c.sliding_window < 0 || c.sliding_window > kMaxSeqLen)
    return OutOfRange(where + ": sliding_window=" + std::to_string(c.sliding_window) + " is outside [0, " +
                      std::to_string(kMaxSeqLen) + "]");
  const RopeScaling& r = c.rope_scaling;
  if (r.factor != 0.0f &&
      !(std::isfinite(r.factor) && r.factor >= 1.0f && std::isfinite(r.low_freq_factor) &&
        r.low_freq_factor > 0.0f && std::isfinite(r.high_freq_factor) && r.high_freq_factor > r.low_freq_factor &&
        r.original_context > 0 && r.original_context <= kMaxSeqLen))
    return OutOfRange(where + ": llama3 rope scaling needs factor >= 1, 0 < low_freq_factor < "
                      "high_freq_factor and an original context in [1, " + std::to_string(kMaxSeqLen) + "]");
  return Status::Ok();
}

Result<uint64_t> llama2c_expected_bytes(const LlamaConfig& config, std::string_view source) {
  TANDEM_RETURN_IF_ERROR(validate(config, source));
  // With dims bounded as validate() bounds them, the largest term is below
  // 2^17 * 2^20 * 2^12 = 2^49 elements: no overflow before this division.
  return kLlama2cHeaderBytes + static_cast<uint64_t>(layout_of(config).total()) * sizeof(float);
}

Result<LlamaConfig> read_llama2c_header(const MappedFile& file) {
  const std::string& path = file.path();
  if (file.size() < kLlama2cHeaderBytes)
    return DataLoss(path + ": file is " + std::to_string(file.size()) +
                    " bytes, shorter than the 28-byte llama2.c header");
  int32_t h[7];
  std::memcpy(h, file.data(), sizeof(h));
  LlamaConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = h[5] == INT32_MIN ? 0 : (h[5] < 0 ? -static_cast<int64_t>(h[5]) : h[5]);
  c.max_seq_len = h[6];
  TANDEM_ASSIGN_OR_RETURN(uint64_t expected,
                          llama2c_expected_bytes(c, path + " (llama2.c header)"));
  if (file.size() != expected)
    return DataLoss(path + ": header (" + describe(c) + ") implies " + std::to_string(expected) +
                    " bytes but the file has " + std::to_string(file.size()) +
                    (file.size() < expected ? " (truncated?)" : " (trailing data?)"));
  return c;
}

Result<LlamaWeights> load_llama2c(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  TANDEM_ASSIGN_OR_RETURN(const LlamaConfig c, read_llama2c_header(*file));

  LlamaWeights w;
  w.config = c;
  w.storage = file;
  // The mapping is read-only; tensors are views the kernels only read.
  auto* cursor = reinterpret_cast<float*>(const_cast<char*>(file->data()) + kLlama2cHeaderBytes);
  auto take = [&](std::initializer_list<int64_t> dims) {
    Tensor t = Tensor::view(cursor, DType::kF32, dims);
    cursor += t.numel();
    return t;
  };
  const int64_t L = c.n_layers, d = c.dim, q_dim = c.n_heads * c.head_dim(), kv = c.kv_dim(),
                hid = c.hidden_dim;
  w.embedding = take({c.vocab_size, d});
  w.layers.resize(L);
  // llama2.c stores each kind of weight for all layers together.
  for (auto& l : w.layers) l.attn_norm = take({d});
  for (auto& l : w.layers) l.wq = take({q_dim, d});
  for (auto& l : w.layers) l.wk = take({kv, d});
  for (auto& l : w.layers) l.wv = take({kv, d});
  for (auto& l : w.layers) l.wo = take({d, q_dim});
  for (auto& l : w.layers) l.ffn_norm = take({d});
  for (auto& l : w.layers) l.w_gate = take({hid, d});
  for (auto& l : w.layers) l.w_down = take({d, hid});
  for (auto& l : w.layers) l.w_up = take({hid, d});
  w.final_norm = take({d});
  take({c.max_seq_len * c.head_dim()});  // legacy RoPE tables, recomputed instead
  w.classifier = c.shared_classifier ? w.embedding : take({c.vocab_size, d});
  return w;
}

}  // namespace tandem
