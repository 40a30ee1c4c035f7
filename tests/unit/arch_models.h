// Test support: small random models of the architectures beyond llama2.c's
// (Qwen2's attention biases, Qwen3's Q/K norms and wide heads, Llama 3.1's
// RoPE scaling), held as float64 reference weights (reference_llama.h) in
// Hugging Face's layout, and written as the files the loaders read: a GGUF
// file as llama.cpp's converter lays it out, or a Hugging Face directory.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/llama_weights.h"
#include "runtime/status.h"
#include "tests/unit/reference_llama.h"

namespace tandem::testing {

struct ArchSpec {
  std::string arch;  // "llama", "mistral", "qwen2", "qwen3"
  int dim = 32, hidden = 48, layers = 2, heads = 4, kv_heads = 2, vocab = 40, seq = 64;
  int head_dim = 0;  // 0: dim / heads
  double theta = 10000.0, eps = 1e-6;
  bool attention_bias = false;
  bool qk_norm = false;
  RopeScaling scaling;  // factor 0: none
  int sliding_window = 0;  // written when not 0
};

// Random weights (every value a float, so files hold them exactly), Q and K
// rows in rotate-half order (reference.rotate_half = true), untied
// classifier. Norm weights near 1, biases large enough to matter.
ReferenceWeights random_arch_model(const ArchSpec& spec, uint32_t seed);

// GGUF: llama and mistral keep llama.cpp's interleaved Q/K rows (the converter permutes
// them); qwen2/qwen3 keep rotate-half rows. Llama 3.1 scaling goes in as
// llama.cpp writes it, a rope_freqs.weight table of divisors, with the
// original context as metadata. Head widths other than dim / heads are
// stated as attention.key_length / value_length.
Status write_arch_gguf(const ArchSpec& spec, const ReferenceWeights& w, const std::string& path);

// config.json + model.safetensors (F32) in `dir`, which must exist.
Status write_arch_hf_dir(const ArchSpec& spec, const ReferenceWeights& w, const std::string& dir);

}  // namespace tandem::testing
