#include "runtime/quantize_model.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
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

// Rows quantized per piece handed to the writer: bounds the output buffer
// (a 128256 x 16384 embedding would otherwise need its whole Q8_0 form).
constexpr int64_t kRowsPerPiece = 256;

// Decodes the source one layer at a time, when the writer first asks for one
// of that layer's tensors. The writer asks in file order, so each layer is
// decoded once and memory holds one layer in f32 plus one piece of output.
class LayerDecoder {
 public:
  explicit LayerDecoder(const ModelSource& source) : source_(source) {}

  Result<const LlamaWeights*> layer(int64_t l) {
    if (l == current_) return &*weights_;
    weights_.reset();  // the previous layer goes before the next is decoded
    const LlamaConfig& c = source_.config;
    ModelPart part = whole_model_part(c);
    part.shard.first_layer = l;
    part.n_layers = 1;
    part.shard.has_embedding = l == 0;
    part.shard.has_classifier = l == c.n_layers - 1;
    // f32 only: every matrix decoded to f32 and its Q/K rows put in the
    // interleaved order GGUF's "llama" expects.
    AssemblyOptions f32_only;
    f32_only.backend_dtypes = {DType::kF32};
    TANDEM_ASSIGN_OR_RETURN(LlamaWeights w, assemble_weights(source_, part, f32_only));
    weights_ = std::move(w);
    current_ = l;
    return &*weights_;
  }

 private:
  const ModelSource& source_;
  int64_t current_ = -1;
  std::optional<LlamaWeights> weights_;
};

// Picks one tensor out of a decoded layer.
using TensorOf = const Tensor& (*)(const LlamaWeights&);

class QuantizedWriter {
 public:
  QuantizedWriter(const ModelSource& source, DType type, QuantizeReport& report)
      : decoder_(source), type_(type), report_(report) {}

  GgufWriter& writer() { return w_; }

  // A matrix [rows, cols] of layer `layer` -> `type_` or its fallback, its
  // rows quantized while the file is written.
  Status matrix(const std::string& name, int64_t layer, int64_t rows, int64_t cols, TensorOf pick) {
    const DType d = quantized_fallback(type_, cols);
    if (d != type_)
      fallbacks_[std::string(dtype_name(d)) + " (rows of " + std::to_string(cols) + " are not whole " +
                 std::string(dtype_name(type_)) + " blocks of " + std::to_string(dtype_block_elems(type_)) + ")"]
          .emplace_back(name);
    const std::optional<gguf::GgmlType> g = ggml_type_of(d);
    if (!g) return InvalidArgument("no GGUF type for " + std::string(dtype_name(d)));
    const size_t row_bytes = Tensor::view(nullptr, d, {1, cols}).bytes();
    w_.add_tensor(name, *g, {cols, rows}, [this, name, layer, rows, cols, pick, d, row_bytes](const auto& sink) {
      TANDEM_ASSIGN_OR_RETURN(const LlamaWeights* w, decoder_.layer(layer));
      const Tensor& t = pick(*w);
      if (t.dtype != DType::kF32 || t.rows() != rows || t.row_length() != cols)
        return Internal("quantize: " + name + " decoded as " + t.shape_string() + ", expected [" +
                        std::to_string(rows) + ", " + std::to_string(cols) + "] f32");
      piece_.resize(static_cast<size_t>(std::min(rows, kRowsPerPiece)) * row_bytes);
      for (int64_t r0 = 0; r0 < rows; r0 += kRowsPerPiece) {
        const int64_t n = std::min(kRowsPerPiece, rows - r0);
        for (int64_t r = 0; r < n; ++r)
          quantize_row(d, t.f32() + (r0 + r) * cols, cols, piece_.data() + r * row_bytes);
        TANDEM_RETURN_IF_ERROR(sink(std::span<const uint8_t>(piece_.data(), static_cast<size_t>(n) * row_bytes)));
      }
      return Status::Ok();
    });
    report_.bytes_written += static_cast<uint64_t>(rows) * row_bytes;
    report_.parameters += rows * cols;
    return Status::Ok();
  }

  void norm(const std::string& name, int64_t layer, int64_t dim, TensorOf pick) {
    w_.add_tensor(name, gguf::GgmlType::kF32, {dim}, [this, name, layer, dim, pick](const auto& sink) {
      TANDEM_ASSIGN_OR_RETURN(const LlamaWeights* w, decoder_.layer(layer));
      const Tensor& t = pick(*w);
      if (t.dtype != DType::kF32 || t.numel() != dim)
        return Internal("quantize: " + name + " decoded as " + t.shape_string() + ", expected [" +
                        std::to_string(dim) + "] f32");
      return sink(std::span<const uint8_t>(static_cast<const uint8_t*>(t.data), t.bytes()));
    });
    report_.bytes_written += static_cast<uint64_t>(dim) * sizeof(float);
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
  LayerDecoder decoder_;
  DType type_;
  QuantizeReport& report_;
  GgufWriter w_;
  std::vector<uint8_t> piece_;
  std::map<std::string, std::vector<std::string>> fallbacks_;
};

void add_metadata(GgufWriter& w, const LlamaConfig& c, DType type) {
  add_gguf_llama_config(w, c);
  w.add_u32("general.quantization_version", 2);
  w.add_u32("general.file_type", file_type(type));
}

// Every tensor of the file, in file order, each with the decoded layer it
// comes from (a decoded layer holds it at layers[0]).
Status add_tensors(QuantizedWriter& q, const LlamaConfig& c) {
  const int64_t dim = c.dim, hidden = c.hidden_dim, last = c.n_layers - 1;
  TANDEM_RETURN_IF_ERROR(q.matrix("token_embd.weight", 0, c.vocab_size, dim,
                                  [](const LlamaWeights& w) -> const Tensor& { return w.embedding; }));
  struct LayerMatrix {
    const char* name;
    int64_t rows, cols;
    TensorOf pick;
  };
  const LayerMatrix attention[] = {
      {"attn_q", c.q_dim(), dim, [](const LlamaWeights& w) -> const Tensor& { return w.layers[0].wq; }},
      {"attn_k", c.kv_dim(), dim, [](const LlamaWeights& w) -> const Tensor& { return w.layers[0].wk; }},
      {"attn_v", c.kv_dim(), dim, [](const LlamaWeights& w) -> const Tensor& { return w.layers[0].wv; }},
      {"attn_output", dim, c.q_dim(), [](const LlamaWeights& w) -> const Tensor& { return w.layers[0].wo; }}};
  const LayerMatrix mlp[] = {
      {"ffn_gate", hidden, dim, [](const LlamaWeights& w) -> const Tensor& { return w.layers[0].w_gate; }},
      {"ffn_down", dim, hidden, [](const LlamaWeights& w) -> const Tensor& { return w.layers[0].w_down; }},
      {"ffn_up", hidden, dim, [](const LlamaWeights& w) -> const Tensor& { return w.layers[0].w_up; }}};
  for (int64_t l = 0; l < c.n_layers; ++l) {
    q.norm(gguf_layer_name(l, "attn_norm"), l, dim,
           [](const LlamaWeights& w) -> const Tensor& { return w.layers[0].attn_norm; });
    for (const LayerMatrix& m : attention)
      TANDEM_RETURN_IF_ERROR(q.matrix(gguf_layer_name(l, m.name), l, m.rows, m.cols, m.pick));
    q.norm(gguf_layer_name(l, "ffn_norm"), l, dim,
           [](const LlamaWeights& w) -> const Tensor& { return w.layers[0].ffn_norm; });
    for (const LayerMatrix& m : mlp)
      TANDEM_RETURN_IF_ERROR(q.matrix(gguf_layer_name(l, m.name), l, m.rows, m.cols, m.pick));
  }
  q.norm("output_norm.weight", last, dim, [](const LlamaWeights& w) -> const Tensor& { return w.final_norm; });
  if (!c.shared_classifier) {
    TANDEM_RETURN_IF_ERROR(q.matrix("output.weight", last, c.vocab_size, dim,
                                    [](const LlamaWeights& w) -> const Tensor& { return w.classifier; }));
  }
  return Status::Ok();
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
  QuantizedWriter q(source, type, report);
  add_metadata(q.writer(), c, type);
  if (tokenizer != nullptr) {
    add_gguf_tokenizer(q.writer(), *tokenizer);
  } else if (source.has_tokenizer) {
    add_gguf_tokenizer(q.writer(), source.tokenizer);
  } else {
    report.notes.push_back(source.path + " embeds no tokenizer; the GGUF has none: run it with --tokenizer FILE");
  }
  TANDEM_RETURN_IF_ERROR(add_tensors(q, c));
  q.finish_notes();
  TANDEM_RETURN_IF_ERROR(q.writer().write(out));
  return report;
}

}  // namespace tandem
