// A Hugging Face directory -> ModelSource: config, tensors under canonical
// names (FP8 with their scales), tokenizer.
#include "runtime/formats/hf_model.h"

#include <cstring>

#include "runtime/formats/safetensors_checkpoint.h"
#include "runtime/quant_blocks.h"

namespace tandem {
namespace {

// Hugging Face's per-layer tensor names (after "model.layers.N.") and ours.
constexpr std::pair<std::string_view, std::string_view> kLayerParts[] = {
    {"input_layernorm.weight", "attn_norm"},
    {"self_attn.q_proj.weight", "wq"},
    {"self_attn.k_proj.weight", "wk"},
    {"self_attn.v_proj.weight", "wv"},
    {"self_attn.o_proj.weight", "wo"},
    {"post_attention_layernorm.weight", "ffn_norm"},
    {"mlp.gate_proj.weight", "w_gate"},
    {"mlp.up_proj.weight", "w_up"},
    {"mlp.down_proj.weight", "w_down"},
    {"self_attn.q_proj.bias", "bq"},
    {"self_attn.k_proj.bias", "bk"},
    {"self_attn.v_proj.bias", "bv"},
    {"self_attn.q_norm.weight", "q_norm"},
    {"self_attn.k_norm.weight", "k_norm"},
};

// The canonical name of a Hugging Face tensor name; "" for tensors the model
// does not use (FP8 scales, rotary inv_freq buffers, ...). InvalidArgument for
// a layer the config does not have.
Result<std::string> canonical_name(std::string_view name, const HfConfig& hf, const std::string& file) {
  if (name == "model.embed_tokens.weight") return std::string("embedding");
  if (name == "model.norm.weight") return std::string("final_norm");
  if (name == "lm_head.weight") return std::string(hf.tie_word_embeddings ? "" : "classifier");
  constexpr std::string_view kPrefix = "model.layers.";
  if (name.substr(0, kPrefix.size()) != kPrefix) return std::string();
  name.remove_prefix(kPrefix.size());
  int64_t layer = 0;
  size_t digits = 0;
  while (digits < name.size() && digits < 9 && name[digits] >= '0' && name[digits] <= '9')
    layer = layer * 10 + (name[digits++] - '0');
  if (digits == 0 || digits >= name.size() || name[digits] != '.') return std::string();
  // "01" would alias layer 1 and shadow its real tensor: not a layer name.
  if (digits > 1 && name[0] == '0') return std::string();
  const std::string_view part = name.substr(digits + 1);
  for (const auto& [hf_part, ours] : kLayerParts) {
    if (part != hf_part) continue;
    if (layer >= hf.config.n_layers)
      return InvalidArgument(file + ": tensor " + std::string(kPrefix) + std::string(name) +
                             " is for layer " + std::to_string(layer) + ", but config.json has " +
                             std::to_string(hf.config.n_layers) + " layers");
    return "layers." + std::to_string(layer) + "." + std::string(ours);
  }
  // Llama with attention_bias (o_proj too) or mlp_bias: ignoring them would
  // run another model.
  if (part.ends_with(".bias"))
    return Unimplemented(file + ": tensor " + std::string(kPrefix) + std::string(name) +
                         " is a bias the model does not add (it runs the q/k/v projections' biases only)");
  return std::string();
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The scale tensor's values as f32: in place when the file stores aligned
// f32, else converted into memory the source keeps.
Result<const float*> scale_values(const SafetensorsCheckpoint::Entry& scale, const std::string& what,
                                  ModelSource& source) {
  const SafetensorsTensor& t = scale.tensor;
  if (t.dtype == "F32" && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0)
    return reinterpret_cast<const float*>(t.data);
  const int64_t size = t.dtype == "F32" ? 4 : (t.dtype == "BF16" || t.dtype == "F16") ? 2 : 0;
  if (size == 0) return Unimplemented(scale.file + ": " + what + " has dtype " + t.dtype + "; FP8 scales load from F32, BF16 or F16");
  auto values = std::make_shared<std::vector<float>>(t.bytes / size);
  for (size_t i = 0; i < values->size(); ++i) {
    const uint8_t* p = t.data + i * size;
    if (size == 4) {
      std::memcpy(&(*values)[i], p, 4);
    } else {
      const uint16_t h = static_cast<uint16_t>(p[0] | p[1] << 8);
      (*values)[i] = t.dtype == "BF16" ? quant::f32_from_bf16(h) : quant::f32_from_f16(h);
    }
  }
  source.storage.push_back(values);
  return values->data();
}

// Finds an FP8 matrix's scales and states their tiling in `out`.
Status attach_fp8_scales(const SafetensorsCheckpoint& ckpt, const std::string& name, const HfConfig& hf,
                         const std::string& file, SourceTensor& out, ModelSource& source) {
  if (out.shape.size() != 2)
    return Unimplemented(file + ": tensor " + name + " is F8_E4M3 but not a matrix; only FP8 matrices load");
  const int64_t rows = out.shape[0], cols = out.shape[1];
  auto scalar = [](const std::vector<int64_t>& s) {
    return s.empty() || (s.size() == 1 && s[0] == 1) || (s.size() == 2 && s[0] == 1 && s[1] == 1);
  };
  const auto inv = ckpt.tensors.find(name + "_scale_inv");
  const auto row = ckpt.tensors.find(name + "_scale");
  const bool has_inv = inv != ckpt.tensors.end();
  if (!has_inv && row == ckpt.tensors.end())
    return InvalidArgument(file + ": FP8 tensor " + name + " has neither " + name + "_scale_inv nor " +
                           name + "_scale");
  const auto& scale = has_inv ? inv->second : row->second;
  const std::string scale_name = name + (has_inv ? "_scale_inv" : "_scale");
  const std::vector<int64_t>& s = scale.tensor.shape;
  if (scalar(s)) {  // one scale for the whole matrix
    out.fp8_block_rows = rows;
    out.fp8_block_cols = cols;
  } else if (has_inv && s.size() == 2 && s[0] == ceil_div(rows, hf.fp8_block_rows) &&
             s[1] == ceil_div(cols, hf.fp8_block_cols)) {
    out.fp8_block_rows = hf.fp8_block_rows;
    out.fp8_block_cols = hf.fp8_block_cols;
  } else if (!has_inv && ((s.size() == 2 && s[0] == rows && s[1] == 1) || (s.size() == 1 && s[0] == rows))) {
    out.fp8_block_rows = 1;  // one scale per output row
    out.fp8_block_cols = cols;
  } else {
    std::string shape;
    for (const int64_t d : s) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    return Unimplemented(scale.file + ": " + scale_name + " has shape [" + shape + "] for a [" +
                         std::to_string(rows) + ", " + std::to_string(cols) +
                         "] matrix: not one scale, one per row, or one per [" +
                         std::to_string(hf.fp8_block_rows) + ", " + std::to_string(hf.fp8_block_cols) +
                         "] tile");
  }
  TANDEM_ASSIGN_OR_RETURN(out.fp8_scales, scale_values(scale, scale_name, source));
  return Status::Ok();
}

Status add_tensors(const SafetensorsCheckpoint& ckpt, const HfConfig& hf, ModelSource& source) {
  for (const auto& [name, entry] : ckpt.tensors) {
    TANDEM_ASSIGN_OR_RETURN(const std::string canonical, canonical_name(name, hf, entry.file));
    if (canonical.empty()) continue;
    SourceTensor t;
    TANDEM_ASSIGN_OR_RETURN(t.dtype, safetensors_source_dtype(entry.tensor.dtype, entry.file + ": tensor " + name));
    t.shape = entry.tensor.shape;
    t.data = entry.tensor.data;
    t.bytes = entry.tensor.bytes;
    if (t.dtype == SourceDType::kF8E4M3)
      TANDEM_RETURN_IF_ERROR(attach_fp8_scales(ckpt, name, hf, entry.file, t, source));
    source.tensors.emplace(canonical, std::move(t));
  }
  return Status::Ok();
}

}  // namespace

Result<ModelSource> load_hf_source(const std::string& dir) {
  TANDEM_ASSIGN_OR_RETURN(HfConfig hf, read_hf_config(dir + "/config.json"));
  TANDEM_RETURN_IF_ERROR(validate(hf.config, dir + "/config.json"));
  TANDEM_ASSIGN_OR_RETURN(SafetensorsCheckpoint ckpt, read_safetensors_checkpoint(dir));
  ModelSource source;
  source.path = dir;
  source.format = "safetensors";
  source.architecture = hf.architecture;
  source.config = hf.config;
  source.rope_layout = RopeLayout::kRotateHalf;
  source.storage.assign(ckpt.mappings.begin(), ckpt.mappings.end());
  TANDEM_RETURN_IF_ERROR(add_tensors(ckpt, hf, source));
  // An untied model without lm_head would leave the classifier unset; share
  // the embedding as transformers' tied models do.
  source.config.shared_classifier = source.tensors.count("classifier") == 0;
  TANDEM_ASSIGN_OR_RETURN(std::optional<TokenizerSpec> tokenizer, read_hf_tokenizer(dir));
  if (tokenizer) {
    source.has_tokenizer = true;
    source.tokenizer = std::move(*tokenizer);
  }
  note_optional_tensors(source);
  TANDEM_RETURN_IF_ERROR(validate_source(source));
  return source;
}

}  // namespace tandem
