#include "runtime/quantize_model.h"

#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <utility>

#include "runtime/formats/gguf_llama_writer.h"
#include "runtime/model_assembly.h"
#include "runtime/quantize.h"

namespace tandem {
namespace {

// llama.cpp's llama_ftype: what most of the file is (MOSTLY_Q8_0, MOSTLY_Q4_0,
// MOSTLY_Q4_K_S: every matrix Q4_K, none kept at Q6_K).
uint32_t file_type(DType d) {
  switch (d) {
    case DType::kQ8_0: return 7;
    case DType::kQ4_0: return 2;
    default: return 14;
  }
}

std::string gguf_layer_name(int64_t layer, const char* part) {
  return "blk." + std::to_string(layer) + "." + part + ".weight";
}

class QuantizedWriter {
 public:
  QuantizedWriter(DType type, QuantizeReport& report) : type_(type), report_(report) {}

  GgufWriter& writer() { return w_; }

  // A matrix [rows, cols] of f32 rows (as assembled) -> `type_` or its fallback.
  Status matrix(const std::string& name, const Tensor& t) {
    const int64_t rows = t.rows(), cols = t.row_length();
    const DType d = quantized_fallback(type_, cols);
    if (d != type_)
      fallbacks_[std::string(dtype_name(d)) + " (rows of " + std::to_string(cols) + " are not whole " +
                   std::string(dtype_name(type_)) + " blocks of " + std::to_string(dtype_block_elems(type_)) + ")"]
            .emplace_back(name);
    const std::optional<gguf::GgmlType> g = ggml_type_of(d);
    if (!g) return InvalidArgument("no GGUF type for " + std::string(dtype_name(d)));
    const Tensor sized = Tensor::view(nullptr, d, {rows, cols});
    std::vector<uint8_t>& bytes = owned_.emplace_back(sized.bytes());
    const size_t row_bytes = bytes.size() / static_cast<size_t>(rows);
    for (int64_t r = 0; r < rows; ++r) quantize_row(d, t.f32() + r * cols, cols, bytes.data() + r * row_bytes);
    w_.add_tensor(name, *g, {cols, rows}, bytes);
    report_.bytes_written += bytes.size();
    report_.parameters += rows * cols;
    return Status::Ok();
  }

  void norm(const std::string& name, const Tensor& t) {
    std::vector<uint8_t>& bytes = owned_.emplace_back(t.bytes());
    std::memcpy(bytes.data(), t.data, bytes.size());
    w_.add_tensor(name, gguf::GgmlType::kF32, {t.numel()}, bytes);
    report_.bytes_written += bytes.size();
  }

  void finish_notes() {
    for (auto& [what, names] : fallbacks_) {
      std::string line = std::to_string(names.size()) + " matrices written as " + what + ":";
      for (size_t i = 0; i < names.size() && i < 4; ++i) line += " " + names[i];
      if (names.size() > 4) line += " ...";
      report_.notes.push_back(line);
    }
  }

 private:
  DType type_;
  QuantizeReport& report_;
  GgufWriter w_;
  std::deque<std::vector<uint8_t>> owned_;  // the writer points into these until write()
  std::map<std::string, std::vector<std::string>> fallbacks_;
};

void add_metadata(GgufWriter& w, const LlamaConfig& c, DType type) {
  add_gguf_llama_config(w, c);
  w.add_u32("general.quantization_version", 2);
  w.add_u32("general.file_type", file_type(type));
}

}  // namespace

DType quantized_fallback(DType wanted, int64_t row_length) {
  if (storable_as(wanted, row_length)) return wanted;
  if (wanted == DType::kQ4K && storable_as(DType::kQ8_0, row_length)) return DType::kQ8_0;
  return DType::kF16;
}

Result<QuantizeReport> write_quantized_gguf(const ModelSource& source, DType type, const std::string& out,
                                            const TokenizerSpec* tokenizer) {
  if (type != DType::kQ8_0 && type != DType::kQ4_0 && type != DType::kQ4K)
    return InvalidArgument("quantize: type " + std::string(dtype_name(type)) + " is not q8_0, q4_0 or q4_k");
  const LlamaConfig& c = source.config;
  // A "llama" file has no place for these yet: dropping them would change the model.
  if (c.attention_bias || c.qk_norm || c.rope_scaling.factor != 0.0f) {
    return Unimplemented("quantize: " + source.path + " (" + source.architecture +
                         ") has attention biases, Q/K norms or RoPE scaling, which the GGUF \"llama\" file "
                         "quantize writes does not carry yet");
  }
  QuantizeReport report;
  QuantizedWriter q(type, report);
  add_metadata(q.writer(), c, type);
  if (tokenizer != nullptr) {
    add_gguf_tokenizer(q.writer(), *tokenizer);
  } else if (source.has_tokenizer) {
    add_gguf_tokenizer(q.writer(), source.tokenizer);
  } else {
    report.notes.push_back(source.path + " embeds no tokenizer; the GGUF has none: run it with --tokenizer FILE");
  }
  // f32 only: every matrix decoded to f32 and its Q/K rows put in the
  // interleaved order; one layer at a time keeps memory to a layer.
  AssemblyOptions f32_only;
  f32_only.backend_dtypes = {DType::kF32};
  for (int64_t l = 0; l < c.n_layers; ++l) {
    ModelPart part = whole_model_part(c);
    part.shard.first_layer = l;
    part.n_layers = 1;
    part.shard.has_embedding = l == 0;
    part.shard.has_classifier = l == c.n_layers - 1;
    TANDEM_ASSIGN_OR_RETURN(const LlamaWeights w, assemble_weights(source, part, f32_only));
    if (l == 0) TANDEM_RETURN_IF_ERROR(q.matrix("token_embd.weight", w.embedding));
    const LlamaLayerWeights& layer = w.layers[0];
    q.norm(gguf_layer_name(l, "attn_norm"), layer.attn_norm);
    TANDEM_RETURN_IF_ERROR(q.matrix(gguf_layer_name(l, "attn_q"), layer.wq));
    TANDEM_RETURN_IF_ERROR(q.matrix(gguf_layer_name(l, "attn_k"), layer.wk));
    TANDEM_RETURN_IF_ERROR(q.matrix(gguf_layer_name(l, "attn_v"), layer.wv));
    TANDEM_RETURN_IF_ERROR(q.matrix(gguf_layer_name(l, "attn_output"), layer.wo));
    q.norm(gguf_layer_name(l, "ffn_norm"), layer.ffn_norm);
    TANDEM_RETURN_IF_ERROR(q.matrix(gguf_layer_name(l, "ffn_gate"), layer.w_gate));
    TANDEM_RETURN_IF_ERROR(q.matrix(gguf_layer_name(l, "ffn_down"), layer.w_down));
    TANDEM_RETURN_IF_ERROR(q.matrix(gguf_layer_name(l, "ffn_up"), layer.w_up));
    if (l == c.n_layers - 1) {
      q.norm("output_norm.weight", w.final_norm);
      if (!c.shared_classifier) TANDEM_RETURN_IF_ERROR(q.matrix("output.weight", w.classifier));
    }
  }
  q.finish_notes();
  TANDEM_RETURN_IF_ERROR(q.writer().write(out));
  return report;
}

}  // namespace tandem
