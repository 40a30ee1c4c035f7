#include "runtime/loaded_model.h"

#include <utility>

#include "runtime/formats/gguf_model.h"
#include "runtime/formats/hf_model.h"
#include "runtime/llama2c_loader.h"

namespace tandem {

Result<ModelSource> open_model_source(const ModelFiles& files) {
  switch (files.format) {
    case ModelFileFormat::kLlama2c: return load_llama2c_source(files.checkpoint);
    case ModelFileFormat::kGguf: return load_gguf_source(files.checkpoint);
    case ModelFileFormat::kHuggingFace: return load_hf_source(files.checkpoint);
  }
  return InvalidArgument(files.checkpoint + ": unknown model format");
}

Result<Tokenizer> load_model_tokenizer(const ModelFiles& files, const ModelSource& source) {
  const int vocab = static_cast<int>(source.config.vocab_size);
  if (!files.tokenizer.empty()) return Tokenizer::load_llama2c(files.tokenizer, vocab);
  if (source.has_tokenizer) {
    auto tokenizer = Tokenizer::from_spec(source.tokenizer, vocab);
    if (!tokenizer.ok()) return tokenizer.status().with_context(files.checkpoint + ": its tokenizer");
    return tokenizer;
  }
  return NotFound(files.checkpoint + " embeds no tokenizer; name a llama2.c tokenizer file with --tokenizer");
}

Result<LoadedModel> load_model(const std::string& path, const LoadOptions& options) {
  LoadedModel loaded;
  TANDEM_ASSIGN_OR_RETURN(loaded.files, resolve_model_files(path, options.tokenizer));
  TANDEM_ASSIGN_OR_RETURN(const ModelSource source, open_model_source(loaded.files));
  TANDEM_ASSIGN_OR_RETURN(loaded.tokenizer, load_model_tokenizer(loaded.files, source));
  TANDEM_ASSIGN_OR_RETURN(loaded.backend, make_backend(options.backend));
  AssemblyOptions assembly = assembly_options_for(options.backend.kind);
  assembly.weight_dtype = options.weight_dtype;
  TANDEM_ASSIGN_OR_RETURN(LlamaWeights weights, assemble_weights(source, whole_model_part(source.config),
                                                                 assembly, &loaded.assembly));
  TANDEM_ASSIGN_OR_RETURN(loaded.model,
                          LlamaModel::create(*loaded.backend, std::move(weights), options.model));
  return loaded;
}

}  // namespace tandem
