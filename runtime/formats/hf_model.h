// Hugging Face model directories -> ModelSource (runtime/model_source.h):
//   config.json            the architecture and shape (LlamaForCausalLM,
//                          MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)
//   model.safetensors, or model.safetensors.index.json + its shards
//                          (runtime/formats/safetensors_checkpoint.h)
//   tokenizer.json, tokenizer_config.json   optional: the tokenizer
//
// Tensors keep Hugging Face's Q/K row order (rope_layout = kRotateHalf: the
// assembler reorders them). FP8 (F8_E4M3) matrices carry their scales: a
// "<name>_scale_inv" tensor of [128, 128] tiles (or the tile size that
// config.json's quantization_config.weight_block_size gives), as DeepSeek-V3
// style "fp8" checkpoints store them, or a "<name>_scale" tensor of one
// scale per row ([out, 1], fbgemm_fp8 as Meta-Llama-3.1-405B-Instruct-FP8
// stores it) or one for the whole matrix ([] or [1], compressed-tensors'
// per-tensor form); both multiply the stored value. Other layouts are
// Unimplemented. Errors start with the file they concern.
#pragma once

#include <optional>
#include <string>

#include "runtime/model_source.h"
#include "runtime/status.h"

namespace tandem {

// The whole directory, validated by validate_source(). A directory without
// tokenizer.json loads with has_tokenizer = false.
Result<ModelSource> load_hf_source(const std::string& dir);

// config.json alone. InvalidArgument naming the key for a wrong JSON type or
// a missing required key; Unimplemented for an architecture, rope_scaling
// type, head_dim or quantization method this runtime cannot run.
struct HfConfig {
  std::string architecture;  // "llama", "mistral", "qwen2", "qwen3"
  LlamaConfig config;        // not yet validate()d
  bool tie_word_embeddings = false;
  int64_t fp8_block_rows = 128;  // quantization_config.weight_block_size
  int64_t fp8_block_cols = 128;
};
Result<HfConfig> read_hf_config(const std::string& path);

// tokenizer.json (and tokenizer_config.json beside it, if present) in `dir`;
// std::nullopt when tokenizer.json is absent.
//   model.type must be "BPE". With byte_fallback (SentencePiece-style: Llama 2,
//   Mistral) the spec's model is "llama"; otherwise "gpt2" (byte-level: Llama 3,
//   Qwen) with `pre` named from the pre-tokenizer's split regex: Llama 3's ->
//   "llama-bpe", Qwen2's -> "qwen2", GPT-2's ByteLevel regex -> "gpt2"; any
//   other -> "default" (the tokenizer then decides whether it can run it).
//   added_tokens override or extend the vocabulary: special ones are control
//   tokens (3), others user-defined (4); llama-model byte tokens <0xNN> are 6.
Result<std::optional<TokenizerSpec>> read_hf_tokenizer(const std::string& dir);

}  // namespace tandem
