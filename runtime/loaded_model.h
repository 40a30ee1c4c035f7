// A model ready to run: its backend, weights, KV cache and tokenizer, loaded
// from a path in any supported format (runtime/model_files.h says which) or
// built from a synthetic shape.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "runtime/backend.h"
#include "runtime/llama_model.h"
#include "runtime/model_assembly.h"
#include "runtime/model_files.h"
#include "runtime/model_source.h"
#include "runtime/tokenizer.h"

namespace tandem {

struct LoadOptions {
  std::string tokenizer;  // explicit llama2.c tokenizer path; empty: the model's own or beside it
  BackendOptions backend;
  LlamaModelOptions model;
  // Store the matrices in this dtype (quantize on load); unset: the file's
  // dtype where the backend computes with it (runtime/model_assembly.h).
  std::optional<DType> weight_dtype;
};

struct LoadedModel {
  ModelFiles files;
  std::unique_ptr<Backend> backend;  // declared first: outlives the model
  std::unique_ptr<LlamaModel> model;
  Tokenizer tokenizer;
  AssemblyReport assembly;  // what was mapped in place and what converted
};

// The model `files` name, read lazily: headers validated, tensors mapped.
Result<ModelSource> open_model_source(const ModelFiles& files);

// The explicit tokenizer file when `files` names one, else the model's own;
// NotFound naming the model when it has none.
Result<Tokenizer> load_model_tokenizer(const ModelFiles& files, const ModelSource& source);

Result<LoadedModel> load_model(const std::string& path, const LoadOptions& options);

}  // namespace tandem
