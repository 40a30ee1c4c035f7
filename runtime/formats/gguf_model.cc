#include "runtime/formats/gguf_model.h"

#include <charconv>
#include <cmath>
#include <string_view>

#include "runtime/formats/gguf_model_keys.h"
#include "runtime/mapped_file.h"

namespace tandem {
namespace {

using gguf::GgmlType;

SourceDType source_dtype(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return SourceDType::kF32;
    case GgmlType::kF16: return SourceDType::kF16;
    case GgmlType::kBF16: return SourceDType::kBF16;
    case GgmlType::kQ8_0: return SourceDType::kQ8_0;
    case GgmlType::kQ4_0: return SourceDType::kQ4_0;
    case GgmlType::kQ4_K: return SourceDType::kQ4_K;
    case GgmlType::kQ6_K: return SourceDType::kQ6_K;
  }
  return SourceDType::kF32;  // unreachable: parse() admits only the types above
}

// Which Q/K row order a GGUF file holds, as read in llama.cpp: its
// convert_hf_to_gguf.py LlamaModel.modify_tensors permutes q_proj/k_proj
// (reshape to [heads, 2, head_dim/2, in], swap the middle axes), turning
// Hugging Face's rotate-half rows into adjacent pairs, and
// llama_model_rope_type() runs LLM_ARCH_LLAMA with LLAMA_ROPE_TYPE_NORM
// ("pairs of consecutive head values"); Mistral models convert as llama.
// Qwen2Model/Qwen3Model leave the rows alone and llama.cpp runs QWEN2/QWEN3
// with LLAMA_ROPE_TYPE_NEOX ("pairs offset by n_rot/2"): rotate-half.
bool rotate_half_architecture(std::string_view arch) { return arch == "qwen2" || arch == "qwen3"; }

// Heads are embedding_length / head_count wide unless attention.key_length
// says otherwise (Qwen3's 0.6B: 16 heads of 128 over a width of 1024). Keys
// and values must be equally wide and RoPE must rotate all of each head.
Status read_head_dim(const gguf::File& f, const std::string& arch, LlamaConfig& c) {
  const auto key = [&](const char* name) { return arch + "." + name; };
  if (f.find(key("attention.key_length")) != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(const int64_t v, f.get_int(key("attention.key_length")));
    if (c.n_heads <= 0 || c.dim % c.n_heads != 0 || v != c.dim / c.n_heads) c.explicit_head_dim = v;
  }
  for (const char* name : {"attention.value_length", "rope.dimension_count"}) {
    if (f.find(key(name)) == nullptr) continue;
    TANDEM_ASSIGN_OR_RETURN(const int64_t v, f.get_int(key(name)));
    const int64_t head_dim = c.explicit_head_dim != 0 ? c.explicit_head_dim : c.n_heads > 0 ? c.dim / c.n_heads : 0;
    if (v != head_dim)
      return Unimplemented(f.source + ": " + key(name) + " = " + std::to_string(v) + " differs from the head width " +
                           std::to_string(head_dim) + "; tandem's attention has " +
                           (std::string_view(name) == "rope.dimension_count" ? "RoPE rotate all of each head"
                                                                               : "keys and values equally wide"));
  }
  return Status::Ok();
}

Result<LlamaConfig> read_config(const gguf::File& f, const std::string& arch) {
  const auto key = [&](const char* name) { return arch + "." + name; };
  LlamaConfig c;
  TANDEM_ASSIGN_OR_RETURN(c.dim, f.get_int(key("embedding_length")));
  TANDEM_ASSIGN_OR_RETURN(c.hidden_dim, f.get_int(key("feed_forward_length")));
  TANDEM_ASSIGN_OR_RETURN(c.n_layers, f.get_int(key("block_count")));
  TANDEM_ASSIGN_OR_RETURN(c.n_heads, f.get_int(key("attention.head_count")));
  TANDEM_ASSIGN_OR_RETURN(c.n_kv_heads,
                          gguf_optional(f, key("attention.head_count_kv"), c.n_heads, &gguf::File::get_int));
  TANDEM_ASSIGN_OR_RETURN(c.max_seq_len, f.get_int(key("context_length")));
  TANDEM_ASSIGN_OR_RETURN(c.rope_theta,
                          gguf_optional(f, key("rope.freq_base"), 10000.0f, &gguf::File::get_f32));
  TANDEM_ASSIGN_OR_RETURN(
      c.norm_eps, gguf_optional(f, key("attention.layer_norm_rms_epsilon"), 1e-5f, &gguf::File::get_f32));
  if (!(c.rope_theta > 0.0f) || !std::isfinite(c.rope_theta))
    return OutOfRange(f.source + ": " + key("rope.freq_base") + " = " + std::to_string(c.rope_theta) +
                      " is not a positive number");
  if (!(c.norm_eps > 0.0f) || !std::isfinite(c.norm_eps))
    return OutOfRange(f.source + ": " + key("attention.layer_norm_rms_epsilon") + " is not a positive number");

  // The vocabulary is the embedding's rows (ne[1]), as llama.cpp sizes it.
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (embd == nullptr) return NotFound(f.source + ": the model has no tensor token_embd.weight");
  if (embd->ne.size() != 2)
    return InvalidArgument(f.source + ": token_embd.weight has " + std::to_string(embd->ne.size()) +
                           " dimensions, not 2");
  c.vocab_size = embd->ne[1];
  c.shared_classifier = f.find_tensor("output.weight") == nullptr;
  TANDEM_RETURN_IF_ERROR(read_head_dim(f, arch, c));
  // llama.cpp's key for sliding-window attention; a window as long as the
  // context changes nothing.
  TANDEM_ASSIGN_OR_RETURN(const int64_t window,
                          gguf_optional<int64_t>(f, key("attention.sliding_window"), 0, &gguf::File::get_int));
  if (window < 0) return OutOfRange(f.source + ": " + key("attention.sliding_window") + " is negative");
  if (window > 0 && window < c.max_seq_len) c.sliding_window = window;
  TANDEM_RETURN_IF_ERROR(validate(c, f.source));

  if (f.find(key("vocab_size")) != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(const int64_t v, f.get_int(key("vocab_size")));
    if (v != c.vocab_size)
      return InvalidArgument(f.source + ": " + key("vocab_size") + " = " + std::to_string(v) +
                             " but token_embd.weight has " + std::to_string(c.vocab_size) + " rows");
  }
  return c;
}

// "blk.N.rest" -> N and rest; false when the name is not a block tensor.
bool split_block_name(std::string_view name, int64_t* layer, std::string_view* rest) {
  if (!name.starts_with("blk.")) return false;
  name.remove_prefix(4);
  const size_t dot = name.find('.');
  // Digits only, without leading zeros: "-0" or "01" would alias layer 0 or
  // 1, and whichever came first would silently shadow the real tensor.
  if (dot == std::string_view::npos || dot == 0 || name[0] < '0' || name[0] > '9' || (name[0] == '0' && dot > 1))
    return false;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + dot, *layer);
  if (ec != std::errc() || end != name.data() + dot) return false;
  *rest = name.substr(dot + 1);
  return true;
}

// The canonical name of a GGUF tensor; empty for tensors tandem ignores.
std::string canonical_name(std::string_view name, const std::string& source, int64_t n_layers,
                           Status* error) {
  if (name == "token_embd.weight") return "embedding";
  if (name == "output_norm.weight") return "final_norm";
  if (name == "output.weight") return "classifier";
  int64_t layer = 0;
  std::string_view rest;
  if (!split_block_name(name, &layer, &rest)) return "";
  static constexpr std::pair<std::string_view, std::string_view> kParts[] = {
      {"attn_norm.weight", "attn_norm"}, {"attn_q.weight", "wq"},      {"attn_k.weight", "wk"},
      {"attn_v.weight", "wv"},           {"attn_output.weight", "wo"}, {"ffn_norm.weight", "ffn_norm"},
      {"ffn_gate.weight", "w_gate"},     {"ffn_down.weight", "w_down"}, {"ffn_up.weight", "w_up"},
      {"attn_q.bias", "bq"},             {"attn_k.bias", "bk"},        {"attn_v.bias", "bv"},
      {"attn_q_norm.weight", "q_norm"},  {"attn_k_norm.weight", "k_norm"}};
  for (const auto& [gguf_part, part] : kParts) {
    if (rest != gguf_part) continue;
    if (layer >= n_layers) {
      *error = InvalidArgument(source + ": tensor " + std::string(name) + " belongs to layer " +
                               std::to_string(layer) + " but block_count is " + std::to_string(n_layers));
      return "";
    }
    return "layers." + std::to_string(layer) + "." + std::string(part);
  }
  if (rest.ends_with(".bias"))  // ignoring it would run another model
    *error = Unimplemented(source + ": tensor " + std::string(name) +
                           " is a bias the model does not add (it runs the q/k/v projections' biases only)");
  return "";
}

Status read_tensors(const gguf::File& f, ModelSource& source) {
  for (const gguf::TensorInfo& t : f.tensors) {
    Status error;
    const std::string name = canonical_name(t.name, f.source, source.config.n_layers, &error);
    TANDEM_RETURN_IF_ERROR(error);
    if (name.empty()) continue;
    SourceTensor st;
    st.dtype = source_dtype(t.type);
    st.shape.assign(t.ne.rbegin(), t.ne.rend());
    st.data = t.data;
    st.bytes = t.bytes;
    source.tensors.emplace(name, std::move(st));
  }
  return Status::Ok();
}

// Names what a llama.cpp user would look for when a needed tensor is
// missing, before validate_source() checks shapes under canonical names.
Status check_required_tensors(const gguf::File& f, int64_t n_layers) {
  static constexpr const char* kLayerParts[] = {"attn_norm", "attn_q",   "attn_k",   "attn_v", "attn_output",
                                                "ffn_norm",  "ffn_gate", "ffn_down", "ffn_up"};
  const auto require = [&](const std::string& name) -> Status {
    if (f.find_tensor(name) == nullptr) return NotFound(f.source + ": the model has no tensor " + name);
    return Status::Ok();
  };
  TANDEM_RETURN_IF_ERROR(require("output_norm.weight"));
  for (int64_t l = 0; l < n_layers; ++l)
    for (const char* part : kLayerParts)
      TANDEM_RETURN_IF_ERROR(require("blk." + std::to_string(l) + "." + part + ".weight"));
  return Status::Ok();
}

}  // namespace

Result<ModelSource> gguf_model_source(const gguf::File& f) {
  ModelSource source;
  source.path = f.source;
  source.format = "gguf";
  TANDEM_ASSIGN_OR_RETURN(source.architecture, f.get_string("general.architecture"));
  const std::string& arch = source.architecture;
  if (arch != "llama" && arch != "mistral" && arch != "qwen2" && arch != "qwen3")
    return Unimplemented(f.source + ": architecture " + arch +
                         " is not supported; tandem runs llama, mistral, qwen2 and qwen3");
  TANDEM_ASSIGN_OR_RETURN(source.config, read_config(f, arch));
  source.rope_layout = rotate_half_architecture(arch) ? RopeLayout::kRotateHalf : RopeLayout::kInterleaved;
  TANDEM_RETURN_IF_ERROR(read_gguf_rope_scaling(f, arch, source));
  TANDEM_RETURN_IF_ERROR(check_required_tensors(f, source.config.n_layers));
  TANDEM_RETURN_IF_ERROR(read_tensors(f, source));
  TANDEM_RETURN_IF_ERROR(read_gguf_tokenizer(f, source));
  if (source.has_tokenizer &&
      static_cast<int64_t>(source.tokenizer.tokens.size()) != source.config.vocab_size)
    return InvalidArgument(f.source + ": the tokenizer has " + std::to_string(source.tokenizer.tokens.size()) +
                           " tokens but token_embd.weight has " + std::to_string(source.config.vocab_size) +
                           " rows");
  note_optional_tensors(source);
  TANDEM_RETURN_IF_ERROR(validate_source(source));
  return source;
}

Result<ModelSource> load_gguf_source(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(file->data()), file->size());
  TANDEM_ASSIGN_OR_RETURN(const gguf::File parsed, gguf::parse(bytes, path));
  TANDEM_ASSIGN_OR_RETURN(ModelSource source, gguf_model_source(parsed));
  source.storage.push_back(std::move(file));
  return source;
}

}  // namespace tandem
