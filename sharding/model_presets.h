// Named model shapes the memory planner (`tandem plan --model NAME`) knows
// without a file: the real shapes of the models people ask about, from their
// published configs. A pure lookup: no files, no network.
#pragma once

#include <string_view>

#include "runtime/llama_weights.h"
#include "runtime/status.h"

namespace tandem::sharding {

// Case-insensitive: "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"
// (untied classifier, RoPE theta 500000, trained context 131072),
// "stories260K", "stories110M" (llama2.c's TinyStories models, tied).
// NotFound for an unknown name (listing the known ones); Unimplemented for a
// known model the planner cannot count yet: "qwen3-235b-a22b" is a
// mixture of experts, and the planner's layers are dense Llama layers.
Result<LlamaConfig> model_preset(std::string_view name);

// The names above, comma-separated, for --help and error messages.
std::string_view model_preset_names();

}  // namespace tandem::sharding
