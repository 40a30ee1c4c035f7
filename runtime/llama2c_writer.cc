#include "runtime/llama2c_writer.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <vector>

#include "runtime/atomic_file.h"
#include "runtime/llama2c_loader.h"

namespace tandem {
namespace {

Status write_tensor(FileWriter& out, const Tensor& t, const char* name) {
  if (t.dtype != DType::kF32) {
    return InvalidArgument(std::string("llama2.c checkpoints hold f32 weights; ") + name + " is not f32");
  }
  return out.write(t.data, static_cast<size_t>(t.numel()) * sizeof(float));
}

// run.c's freq_cis_real and freq_cis_imag: [seq_len, head_dim / 2] each.
Status write_rope_tables(FileWriter& out, const LlamaConfig& c) {
  const int64_t half = c.head_dim() / 2;
  std::vector<float> row(static_cast<size_t>(half));
  for (const bool imaginary : {false, true}) {
    for (int64_t pos = 0; pos < c.max_seq_len; ++pos) {
      for (int64_t i = 0; i < half; ++i) {
        const double freq = 1.0 / std::pow(static_cast<double>(c.rope_theta), 2.0 * i / c.head_dim());
        row[i] = static_cast<float>(imaginary ? std::sin(pos * freq) : std::cos(pos * freq));
      }
      TANDEM_RETURN_IF_ERROR(out.write(row.data(), row.size() * sizeof(float)));
    }
  }
  return Status::Ok();
}

Status write_all(FileWriter& out, const LlamaWeights& w) {
  const LlamaConfig& c = w.config;
  const int32_t header[7] = {static_cast<int32_t>(c.dim),        static_cast<int32_t>(c.hidden_dim),
                             static_cast<int32_t>(c.n_layers),   static_cast<int32_t>(c.n_heads),
                             static_cast<int32_t>(c.n_kv_heads),
                             // A negative vocabulary size says the classifier follows.
                             static_cast<int32_t>(c.shared_classifier ? c.vocab_size : -c.vocab_size),
                             static_cast<int32_t>(c.max_seq_len)};
  TANDEM_RETURN_IF_ERROR(out.write(header, sizeof header));
  TANDEM_RETURN_IF_ERROR(write_tensor(out, w.embedding, "the embedding"));
  // llama2.c stores each kind of weight for all layers together.
  const std::pair<const char*, Tensor LlamaLayerWeights::*> kinds[] = {
      {"attn_norm", &LlamaLayerWeights::attn_norm}, {"wq", &LlamaLayerWeights::wq},
      {"wk", &LlamaLayerWeights::wk},               {"wv", &LlamaLayerWeights::wv},
      {"wo", &LlamaLayerWeights::wo},               {"ffn_norm", &LlamaLayerWeights::ffn_norm},
      {"w1 (gate)", &LlamaLayerWeights::w_gate},    {"w2 (down)", &LlamaLayerWeights::w_down},
      {"w3 (up)", &LlamaLayerWeights::w_up}};
  for (const auto& [name, member] : kinds) {
    for (const LlamaLayerWeights& layer : w.layers) TANDEM_RETURN_IF_ERROR(write_tensor(out, layer.*member, name));
  }
  TANDEM_RETURN_IF_ERROR(write_tensor(out, w.final_norm, "the final norm"));
  TANDEM_RETURN_IF_ERROR(write_rope_tables(out, c));
  if (!c.shared_classifier) TANDEM_RETURN_IF_ERROR(write_tensor(out, w.classifier, "the classifier"));
  return Status::Ok();
}

}  // namespace

Status write_llama2c(const LlamaWeights& weights, const std::string& path) {
  TANDEM_RETURN_IF_ERROR(validate(weights.config, path));
  if (static_cast<int64_t>(weights.layers.size()) != weights.config.n_layers) {
    return InvalidArgument(path + ": the weights hold " + std::to_string(weights.layers.size()) +
                           " layers, the config says " + std::to_string(weights.config.n_layers));
  }
  const LlamaConfig& c = weights.config;
  // run.c knows none of these: a checkpoint without them would be another model.
  if ((c.explicit_head_dim != 0 && c.explicit_head_dim != c.dim / c.n_heads) || c.attention_bias || c.qk_norm ||
      c.rope_scaling.factor != 0.0f)
    return InvalidArgument(path + ": llama2.c checkpoints cannot hold heads of other than dim / n_heads, "
                           "attention biases, Q/K norms or rope scaling");
  return write_file_atomically(path, [&weights](FileWriter& out) { return write_all(out, weights); });
}

}  // namespace tandem
