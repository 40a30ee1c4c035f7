// The llama2.c checkpoint as a ModelSource, so it goes through the same
// assembler as GGUF and Hugging Face files (and tests can compare the paths).
#include <string>
#include <utility>

#include "runtime/llama2c_loader.h"

namespace tandem {
namespace {

SourceTensor as_source(const Tensor& t) {
  SourceTensor s;
  s.dtype = SourceDType::kF32;
  s.shape.assign(t.shape.begin(), t.shape.begin() + t.rank);
  s.data = static_cast<const uint8_t*>(t.data);
  s.bytes = t.bytes();
  return s;
}

}  // namespace

Result<ModelSource> load_llama2c_source(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(LlamaWeights w, load_llama2c(path));
  ModelSource source;
  source.path = path;
  source.format = "llama2c";
  source.architecture = "llama";
  source.config = w.config;
  source.tensors["embedding"] = as_source(w.embedding);
  source.tensors["final_norm"] = as_source(w.final_norm);
  if (!w.config.shared_classifier) source.tensors["classifier"] = as_source(w.classifier);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LlamaLayerWeights& lw = w.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    const std::pair<const char*, const Tensor*> parts[] = {
        {"attn_norm", &lw.attn_norm}, {"wq", &lw.wq},         {"wk", &lw.wk},
        {"wv", &lw.wv},               {"wo", &lw.wo},         {"ffn_norm", &lw.ffn_norm},
        {"w_gate", &lw.w_gate},       {"w_down", &lw.w_down}, {"w_up", &lw.w_up}};
    for (const auto& [name, tensor] : parts) source.tensors[p + name] = as_source(*tensor);
  }
  source.storage.push_back(std::move(w.storage));
  TANDEM_RETURN_IF_ERROR(validate_source(source));
  return source;
}

}  // namespace tandem
