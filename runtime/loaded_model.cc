#include "runtime/loaded_model.h"

#include "runtime/llama2c_loader.h"

namespace tandem {

Result<LoadedModel> load_model(const std::string& path, const LoadOptions& options) {
  LoadedModel loaded;
  TANDEM_ASSIGN_OR_RETURN(loaded.files, resolve_model_files(path, options.tokenizer));
  TANDEM_ASSIGN_OR_RETURN(LlamaWeights weights, load_llama2c(loaded.files.checkpoint));
  const int vocab = static_cast<int>(weights.config.vocab_size);
  TANDEM_ASSIGN_OR_RETURN(loaded.tokenizer, Tokenizer::load_llama2c(loaded.files.tokenizer, vocab));
  TANDEM_ASSIGN_OR_RETURN(loaded.backend, make_backend(options.backend));
  TANDEM_ASSIGN_OR_RETURN(loaded.model,
                          LlamaModel::create(*loaded.backend, std::move(weights), options.model));
  return loaded;
}

}  // namespace tandem
