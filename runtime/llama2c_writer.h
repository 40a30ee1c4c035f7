// Writes Llama weights as a llama2.c checkpoint (the format load_llama2c()
// reads, and llama2.c's run.c): the 7-int header, then every f32 tensor in
// llama2.c's order, the legacy RoPE tables included so run.c can read it too.
#pragma once

#include <string>

#include "runtime/llama_weights.h"

namespace tandem {

// f32 weights only (InvalidArgument otherwise). Written to a temporary file
// and renamed, so `path` is either absent or complete.
Status write_llama2c(const LlamaWeights& weights, const std::string& path);

}  // namespace tandem
