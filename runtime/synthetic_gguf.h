// A synthetic Llama model (runtime/synthetic.h's shapes) written straight to
// a GGUF file, one block of rows at a time: a model far larger than memory
// (Llama 3.1 405B's widths: a 2-layer slice is 42 GB in f32, 6 GB in Q4_0)
// is written without ever holding it, and without an f32 copy of it.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/llama_weights.h"
#include "runtime/model_source.h"
#include "runtime/tensor.h"

namespace tandem {

struct SyntheticGgufOptions {
  uint64_t seed = 1;
  DType dtype = DType::kF32;  // the matrices' (f32, f16, bf16, q8_0, q4_0); norms stay f32
  int threads = 0;            // filling and quantizing rows; 0: every core
  const TokenizerSpec* tokenizer = nullptr;  // embedded when set
};

// Writes `config` as a llama-architecture GGUF at `path` (atomically: PATH.tmp
// renamed). The values follow make_synthetic_weights' distribution (matrices
// U(-a, a) with a = 1/sqrt(fan_in), norms 1 + U(-0.1, 0.1)) but each row has
// its own seed (from `seed`, the tensor and the row), so the bytes depend on
// the seed alone, not on the thread count. InvalidArgument when the config
// does not validate or a matrix's rows are no whole number of the dtype's
// blocks.
Status write_synthetic_gguf(const LlamaConfig& config, const SyntheticGgufOptions& options, const std::string& path);

}  // namespace tandem
