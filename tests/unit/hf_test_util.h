// Test support: a llama2.c checkpoint converted into a Hugging Face model
// directory (config.json + model.safetensors, no tokenizer), as
// transformers' convert_llama_weights_to_hf.py would lay it out: Q and K rows
// permuted from llama2.c's interleaved RoPE pairs into rotate-half order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model_source.h"
#include "runtime/status.h"

namespace tandem::testing {

// Row i of the HF (rotate-half) matrix is row hf_to_interleaved_row(i) of the
// llama2.c (interleaved) one: within each head of `head_dim` rows, HF's row
// p * head_dim / 2 + j holds the pair element 2j + p.
int64_t hf_to_interleaved_row(int64_t hf_row, int64_t head_dim);

// Writes OUT_DIR/config.json and OUT_DIR/model.safetensors holding the
// checkpoint's weights in `dtype` (kF32, kF16 or kBF16; norms too, as HF
// exports store every tensor in the model's dtype). OUT_DIR must exist.
Status write_hf_dir_from_llama2c(const std::string& llama2c_path, const std::string& out_dir,
                                 SourceDType dtype);

}  // namespace tandem::testing
