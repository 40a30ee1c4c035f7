// Llama weights of any shape filled with seeded random values, for tests and
// benchmarks of shapes no bundled checkpoint has. Same seed, same weights, on
// every machine.
#pragma once

#include <optional>
#include <string_view>

#include "runtime/llama_weights.h"

namespace tandem {

// Named shapes: "stories260K", "stories15M", "stories110M" (llama2.c's), "tiny-gqa"
// (a small grouped-query model for tests). nullopt for an unknown name.
std::optional<LlamaConfig> synthetic_shape(std::string_view name);
// The names above, comma-separated, for error messages and --help.
std::string_view synthetic_shape_names();

// Weights ~ U(-a, a) with a = 1/sqrt(fan_in) (so activations stay O(1) through
// depth), norms 1 + small noise. Errors if the config does not validate or
// the memory cannot be had.
Result<LlamaWeights> make_synthetic_weights(const LlamaConfig& config, uint64_t seed);

}  // namespace tandem
