// What a writer of a Llama-family GGUF file needs besides GgufWriter's bytes:
// the llama.* hyperparameters, the tensor names and the embedded tokenizer
// (tokenizer.ggml.*), laid out as llama.cpp's converter writes them and
// runtime/formats/gguf_model.h reads them back. Shared by the tests that
// write models, `tandem model synth --format gguf` and `tandem quantize`.
//
//   GgufWriter w;
//   add_gguf_llama_config(w, weights.config);
//   TANDEM_ASSIGN_OR_RETURN(TokenizerSpec spec, tokenizer_spec_from_llama2c(tokenizer));
//   add_gguf_tokenizer(w, spec);
//   w.add_tensor(gguf_tensor_name("layers.0.wq"), ...);
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "runtime/formats/gguf.h"
#include "runtime/formats/gguf_writer.h"
#include "runtime/llama_weights.h"
#include "runtime/model_source.h"
#include "runtime/tensor.h"
#include "runtime/tokenizer.h"

namespace tandem {

// general.architecture "llama" and llama.{embedding_length,
// feed_forward_length, block_count, attention.head_count,
// attention.head_count_kv, context_length, rope.dimension_count,
// rope.freq_base, attention.layer_norm_rms_epsilon, vocab_size}. A tied
// classifier is said by leaving output.weight out, not by a key.
void add_gguf_llama_config(GgufWriter& writer, const LlamaConfig& config);

// The GGUF name of a canonical tensor name (model_source.h): "embedding" ->
// "token_embd.weight", "layers.3.wq" -> "blk.3.attn_q.weight", ...; "" for a
// name that is not one of a Llama model's (biases and q/k norms included).
std::string gguf_tensor_name(std::string_view canonical);

// The GGUF type storing `dtype` (f32, f16, bf16, q8_0, q4_0, q4_k); nullopt
// for the others.
std::optional<gguf::GgmlType> ggml_type_of(DType dtype);

// A llama2.c tokenizer (Tokenizer::load_llama2c) as the SentencePiece
// ("llama") TokenizerSpec that a GGUF file embeds: pieces with "▁" for a
// space (llama2.c's export had turned SentencePiece's "▁" into " "), BOS
// and EOS spelled "<s>" and "</s>" (the export wraps them in newlines for
// llama2.c's printing), the scores, the token types (unknown, control, byte
// <0xNN>, normal) and the BOS/EOS/UNK ids; add_bos on, add_eos off, as
// llama2.c's run encodes. InvalidArgument for a byte-level tokenizer.
Result<TokenizerSpec> tokenizer_spec_from_llama2c(const Tokenizer& tokenizer);

// `spec` as tokenizer.ggml.* metadata: model, pre (when set), tokens,
// scores and token_type (when set), merges (when set), the bos/eos/unknown/
// padding ids (those >= 0), add_bos_token, add_eos_token, and
// tokenizer.chat_template (when set). read_gguf_tokenizer() gives the spec back.
void add_gguf_tokenizer(GgufWriter& writer, const TokenizerSpec& spec);

}  // namespace tandem
