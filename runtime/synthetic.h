// Llama weights of any shape filled with seeded random values, for tests and
// benchmarks of shapes no bundled checkpoint has. Same seed, same weights, on
// every machine.
#pragma once

#include <optional>
#include <string_view>

#include "runtime/backend.h"
#include "runtime/llama_weights.h"

namespace tandem {

// Named shapes: "stories260K", "stories15M", "stories110M" (llama2.c's), "tiny-gqa"
// (a small grouped-query model for tests), "llama-1b" (dim 2048, 16 layers,
// 32/8 heads, hidden 8192, vocab 32000: ~1.2B parameters with its own
// classifier) and "llama3-8b" (Llama 3 8B's shape: dim 4096, 32 layers, 32/8
// heads, hidden 14336, vocab 128256, untied classifier; context 2048 here to
// keep the f32 KV cache small) and "llama3-405b-2layer" (Llama 3.1 405B's
// widths: dim 16384, 128/8 heads of 128, hidden 53248, vocab 128256, untied
// classifier, with 2 layers and context 1024: 10.6B parameters, 42 GB in f32,
// 6 GB in Q4_0; write it with runtime/synthetic_gguf.h). nullopt for an
// unknown name.
std::optional<LlamaConfig> synthetic_shape(std::string_view name);
// The names above, comma-separated, for error messages and --help.
std::string_view synthetic_shape_names();

// Weights ~ U(-a, a) with a = 1/sqrt(fan_in) (so activations stay O(1) through
// depth), norms 1 + small noise. Errors if the config does not validate or
// the memory cannot be had.
Result<LlamaWeights> make_synthetic_weights(const LlamaConfig& config, uint64_t seed);

// The same shapes made where `backend` keeps its memory, filled by
// backend.fill_synthetic() (uniform values as above, from a per-tensor seed
// derived from `seed`): matrices stored in `dtype` (what the backend computes
// with: f32, f16, bf16, q8_0, q4_0, q4_k on cpu; f32, bf16, q8_0, q4_0 on cuda), norms
// in f32. The weights' storage keeps the backend memory alive; the backend
// must outlive it.
Result<LlamaWeights> make_synthetic_weights_on(Backend& backend, const LlamaConfig& config, uint64_t seed,
                                               DType dtype);

}  // namespace tandem
