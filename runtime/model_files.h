// Where a model's files are, and their format. A user names a directory or
// a file:
//  - a directory with a config.json is a Hugging Face checkpoint
//    (safetensors; its tokenizer.json is read by the loader);
//  - a file starting with the GGUF magic, or a directory holding exactly one
//    *.gguf, is GGUF (its tokenizer is embedded);
//  - otherwise a directory holds one llama2.c checkpoint (*.bin) and its
//    tokenizer (tokenizer.bin, or a single tok*.bin), and a checkpoint
//    file's tokenizer is looked for beside it the same way.
// An explicit tokenizer path (a llama2.c tokenizer file) wins over the
// search and over an embedded tokenizer.
#pragma once

#include <string>
#include <string_view>

#include "runtime/status.h"

namespace tandem {

enum class ModelFileFormat { kLlama2c, kGguf, kHuggingFace };
std::string_view to_string(ModelFileFormat format);

struct ModelFiles {
  ModelFileFormat format = ModelFileFormat::kLlama2c;
  std::string checkpoint;  // the file, or the Hugging Face directory
  std::string tokenizer;   // a llama2.c tokenizer file; empty: the model's own
};

// tokenizer.bin or tok*.bin: a llama2.c tokenizer, never a checkpoint.
bool is_llama2c_tokenizer_name(std::string_view filename);

// What a caller needs of a llama2.c checkpoint's tokenizer.
enum class TokenizerUse {
  kRequired,  // NotFound without one (generate, serve, launch)
  kIfFound,   // empty when none is beside it (quantize writes a GGUF without one)
  kUnused,    // not looked for (plan reads shapes only)
};

// NotFound naming what is missing; InvalidArgument when the choice is ambiguous.
Result<ModelFiles> resolve_model_files(const std::string& path, const std::string& tokenizer = "",
                                       TokenizerUse use = TokenizerUse::kRequired);

}  // namespace tandem
