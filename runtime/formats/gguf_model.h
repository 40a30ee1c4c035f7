// A GGUF file (llama.cpp's convert_hf_to_gguf.py output, or GgufWriter's) as
// a ModelSource: the architectures llama, mistral, qwen2 and qwen3; tensors
// in F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K, viewed in place in the
// mapping; the embedded tokenizer.
//
// What is read, and from where:
//   config       <arch>.embedding_length, .feed_forward_length, .block_count,
//                .attention.head_count, .attention.head_count_kv (default
//                head_count), .context_length, .rope.freq_base (default
//                10000), .attention.layer_norm_rms_epsilon (default 1e-5);
//                the vocabulary from token_embd.weight's rows, cross-checked
//                with <arch>.vocab_size and the tokenizer's token count.
//   rope layout  interleaved pairs for llama/mistral (the converter permutes
//                their Q/K rows into that order), rotate-half for qwen2/qwen3
//                (left as Hugging Face stores them).
//   Llama 3.1    scaling: <arch>.rope.scaling.type "llama3" with .factor,
//                .low_freq_factor, .high_freq_factor, .original_context_length
//                (tandem's writer), or llama.cpp's rope_freqs.weight tensor of
//                per-frequency divisors, which must match Llama 3's formula.
//   tensors      token_embd, output_norm, output (absent: tied to the
//                embedding), blk.N.{attn_norm, attn_q, attn_k, attn_v,
//                attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up}.weight,
//                blk.N.attn_{q,k,v}.bias, blk.N.attn_{q,k}_norm.weight, under
//                model_source.h's canonical names, shapes outermost first.
//                Other tensors are ignored.
//   tokenizer    tokenizer.ggml.* and tokenizer.chat_template.
#pragma once

#include <string>

#include "runtime/formats/gguf.h"
#include "runtime/model_source.h"

namespace tandem {

// Maps, parses and interprets `path`; the mapping is kept in the result's
// storage. Errors start with the path: NotFound for a missing file, key or
// tensor, Unimplemented for an architecture or feature tandem does not run,
// DataLoss / InvalidArgument / OutOfRange for a malformed file.
Result<ModelSource> load_gguf_source(const std::string& path);

// The same from a parsed file, with no storage: the caller keeps the parsed
// bytes alive as long as the result's tensors are used.
Result<ModelSource> gguf_model_source(const gguf::File& file);

// The tokenizer a GGUF file embeds; has_tokenizer false when it has none
// (no tokenizer.ggml.model). Bad arrays (lengths that disagree, wrong types)
// are errors; out-of-range special token ids are dropped (-1) as llama.cpp
// drops them.
Status read_gguf_tokenizer(const gguf::File& file, ModelSource& source);

}  // namespace tandem
