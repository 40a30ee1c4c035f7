// `tandem quantize`: any model load_model reads (llama2.c, GGUF, Hugging
// Face; runtime/model_source.h) -> a GGUF file with architecture "llama",
// its matrices in one quantized type, that load_model reads back.
//
// What is written:
//  - every 2-D matrix (wq wk wv wo w_gate w_up w_down, the token embedding,
//    and the classifier when it is not the embedding) in the requested type;
//    a matrix whose rows are not whole blocks of it takes the fallback of
//    quantized_fallback() and is named in the report (stories260K's 64-wide
//    rows cannot be Q4_K, its 172-wide w_down not even Q8_0). llama.cpp
//    keeps a separate output.weight in Q6_K for k-quants; tandem has no Q6_K
//    kernels, so the classifier takes the requested type too;
//  - norms in f32;
//  - Q and K rows in the interleaved order GGUF's "llama" expects (a
//    rotate-half Hugging Face checkpoint is reordered on the way);
//  - llama.* metadata, general.file_type / quantization_version as llama.cpp
//    writes them, and the tokenizer (tokenizer.ggml.*): the source's own, or
//    the one the caller gives (a llama2.c tokenizer.bin exported with
//    runtime/formats/gguf_llama_writer.h's tokenizer_spec_from_llama2c).
// The source is decoded one layer at a time while the file is written, so
// memory holds one layer in f32 plus a few hundred quantized rows, whatever
// the model's size (a 405B model's 228 GB of Q4 output never is in memory).
#pragma once

#include <string>
#include <vector>

#include "runtime/formats/gguf_writer.h"
#include "runtime/model_source.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace tandem {

// The type a matrix with rows of `row_length` is written in when `wanted`
// was asked for: `wanted` when its blocks fit, else the next one up that
// fits, as llama.cpp's fallbacks go up in bits: q4_k -> q8_0 -> f16;
// q8_0, q4_0 -> f16. f32/f16/bf16 fit any row.
DType quantized_fallback(DType wanted, int64_t row_length);

struct QuantizeReport {
  uint64_t bytes_written = 0;          // tensor data, padding excluded
  int64_t parameters = 0;              // elements of the matrices written
  std::vector<std::string> notes;      // fallbacks and what was left out, one line each
};

// InvalidArgument for a type that is not q8_0, q4_0 or q4_k, or a source the
// Llama model cannot run (as assemble_weights); the writer's errors for `out`.
// `tokenizer`, when given, is embedded instead of the source's own (as an
// explicit tokenizer wins everywhere: runtime/model_files.h).
Result<QuantizeReport> write_quantized_gguf(const ModelSource& source, DType type, const std::string& out,
                                            const TokenizerSpec* tokenizer = nullptr);

}  // namespace tandem
