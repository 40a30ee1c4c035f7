// Where a model's files are. A user names a directory or a checkpoint:
//  - a directory holds one llama2.c checkpoint (*.bin) and its tokenizer
//    (tokenizer.bin, or a single tok*.bin);
//  - a checkpoint file's tokenizer is looked for beside it the same way.
// An explicit tokenizer path wins over the search.
#pragma once

#include <string>

#include "runtime/status.h"

namespace tandem {

struct ModelFiles {
  std::string checkpoint;
  std::string tokenizer;
};

// NotFound naming what is missing; InvalidArgument when the choice is ambiguous.
Result<ModelFiles> resolve_model_files(const std::string& path, const std::string& tokenizer = "");

}  // namespace tandem
