// Reads llama2.c checkpoints ("legacy" version 0, as run.c reads them): a
// header of 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len; a negative vocab_size means a separate classifier),
// then float32 weights in llama2.c's order. The file is mapped, not read, and
// its size must match what the header implies exactly.
#pragma once

#include <string>

#include "runtime/llama_weights.h"
#include "runtime/model_source.h"

namespace tandem {

class MappedFile;

inline constexpr size_t kLlama2cHeaderBytes = 7 * sizeof(int32_t);

// DataLoss / OutOfRange / NotFound with the path and the problem: a file too
// short for the header, non-positive or absurd dims, dims that do not divide,
// a size that disagrees with the header.
Result<LlamaWeights> load_llama2c(const std::string& path);

// The same checkpoint as a ModelSource (runtime/model_source.h): f32 views
// into the mapping under the canonical names, llama2.c's interleaved RoPE
// order, no embedded tokenizer (llama2.c keeps it in a file of its own).
Result<ModelSource> load_llama2c_source(const std::string& path);

// The shape a mapped llama2.c file's header describes, after every check
// load_llama2c makes (the same errors): the header is sane and the file is
// exactly the size it implies. Touches only the header's page, so a loader
// that maps parts of the file (sharding/shard_loader.h) validates it the same
// way without reading the weights.
Result<LlamaConfig> read_llama2c_header(const MappedFile& file);

// The file size a header implies (the checks above, without a file).
Result<uint64_t> llama2c_expected_bytes(const LlamaConfig& config, std::string_view source);

}  // namespace tandem
