// A model ready to run: its backend, weights, KV cache and tokenizer, loaded
// from a path (runtime/model_files.h) or built from a synthetic shape.
#pragma once

#include <memory>
#include <string>

#include "runtime/backend.h"
#include "runtime/llama_model.h"
#include "runtime/model_files.h"
#include "runtime/tokenizer.h"

namespace tandem {

struct LoadOptions {
  std::string tokenizer;  // explicit tokenizer path; empty: search beside the model
  BackendOptions backend;
  LlamaModelOptions model;
};

struct LoadedModel {
  ModelFiles files;
  std::unique_ptr<Backend> backend;  // declared first: outlives the model
  std::unique_ptr<LlamaModel> model;
  Tokenizer tokenizer;
};

Result<LoadedModel> load_model(const std::string& path, const LoadOptions& options);

}  // namespace tandem
