// The one interface every model-file loader answers with: a Llama-family
// model's shape, its tensors as views into read-only mappings (nothing is
// read until a kernel or a copy touches it), and the tokenizer the file
// embeds. GGUF (runtime/formats/gguf_model.h), Hugging Face directories
// (runtime/formats/hf_model.h) and llama2.c checkpoints each fill one in; the
// assembler (runtime/model_assembly.h) turns it into the LlamaWeights of the
// whole model or of one rank's shard, so sharding and dtype rules live in one
// place rather than once per format.
//
// A plain struct, validated by its loader: every tensor's bytes lie inside
// its mapping and match its shape and dtype (see validate_source()).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/llama_weights.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace tandem {

// Storage types a file may hold. The first ones are runtime DTypes; the
// k-quants (256-element super-blocks, ggml's layouts) and FP8 are converted
// by the assembler into a dtype the backend computes with.
enum class SourceDType : uint8_t { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K, kQ6_K, kF8E4M3 };

std::string_view source_dtype_name(SourceDType dtype);
// Elements per block (1, 32 or 256) and bytes per block.
int64_t source_block_elems(SourceDType dtype);
int64_t source_block_bytes(SourceDType dtype);

struct SourceTensor {
  SourceDType dtype = SourceDType::kF32;
  // Row-major, outermost first: a weight matrix is [out, in] (GGUF's ne[] is
  // the reverse; its loader flips it). A norm or bias is [n].
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside one of the source's mappings
  uint64_t bytes = 0;
  // FP8 weights: one f32 scale per [block_rows, block_cols] tile, row-major
  // over the tiles (ceil(cols / block_cols) per tile row); a weight is its
  // e4m3 value times its tile's scale (HF's weight_scale_inv; per-row scales
  // are tiles of [1, cols]). Null otherwise.
  const float* fp8_scales = nullptr;
  int64_t fp8_block_rows = 0;
  int64_t fp8_block_cols = 0;
};

// How Q and K rows are ordered within a head. The model rotates adjacent
// pairs (2j, 2j+1) (llama2.c; GGUF llama, whose converter reorders the rows);
// Hugging Face checkpoints, and GGUF for qwen2/qwen3, rotate (j, j + d/2).
// The assembler reorders rotate-half rows (and Q/K biases and norms) into the
// interleaved order: attention scores are dot products, so the same order on
// both sides computes the same model.
enum class RopeLayout : uint8_t { kInterleaved, kRotateHalf };

// A tokenizer as the file describes it, for runtime/tokenizer.h to build.
struct TokenizerSpec {
  std::string model;   // "llama" (SentencePiece BPE by scores), "gpt2" (byte-level BPE by merges)
  std::string pre;     // gpt2: the pre-tokenizer name ("llama-bpe", "qwen2", ...)
  std::vector<std::string> tokens;  // pieces as stored: "▁the", "<0x0A>", "Ġthe"
  std::vector<float> scores;        // llama: merge priorities; may be empty for gpt2
  std::vector<int32_t> token_types; // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  std::vector<std::string> merges;  // gpt2: "a b" in priority order
  int32_t bos = -1;
  int32_t eos = -1;
  int32_t unk = -1;
  int32_t pad = -1;
  bool add_bos = true;
  bool add_eos = false;
  std::string chat_template;  // Jinja text as the file carries it; empty when absent
};

// Canonical tensor names, whatever the file calls them:
//   "embedding", "final_norm", "classifier" (absent when shared with the
//   embedding), and per layer "layers.N.<part>" with <part> one of attn_norm,
//   wq, wk, wv, wo, ffn_norm, w_gate, w_down, w_up, and optionally bq, bk, bv
//   (attention biases, qwen2) and q_norm, k_norm (per-head RMSNorm, qwen3).
struct ModelSource {
  std::string path;         // what the user named: errors start with it
  std::string format;       // "gguf", "safetensors", "llama2c"
  std::string architecture; // "llama", "mistral", "qwen2", "qwen3"
  // Validated (runtime/llama_weights.h validate()), with its rope scaling,
  // head_dim, attention_bias and qk_norm as the file states them.
  LlamaConfig config;
  RopeLayout rope_layout = RopeLayout::kInterleaved;
  std::map<std::string, SourceTensor, std::less<>> tensors;
  bool has_tokenizer = false;
  TokenizerSpec tokenizer;
  // Keeps the mappings the tensors point into alive.
  std::vector<std::shared_ptr<const void>> storage;
};

// The tensor `name`, or NotFound naming the source and the tensor.
Result<const SourceTensor*> find_tensor(const ModelSource& source, std::string_view name);

// Sets config.attention_bias and config.qk_norm from the tensors layer 0
// has (bq, q_norm): what a file's tensors say, whatever its metadata does.
// Every loader calls it before validate_source(), which then requires them
// in every layer.
void note_optional_tensors(ModelSource& source);

// Checks every tensor a Llama model needs is present with the shape the
// config implies, and that each tensor's byte count matches its shape and
// dtype (rows a whole number of blocks), and that the optional ones (biases,
// Q/K norms) are in every layer or none, as the config says. DataLoss / InvalidArgument naming
// the source and the tensor.
Status validate_source(const ModelSource& source);

}  // namespace tandem
