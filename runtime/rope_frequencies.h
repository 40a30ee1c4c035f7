// The rotary frequencies of a model: how far RoPE turns each pair of a head
// per position. The backends' rope kernels take this table (Backend::rope)
// instead of a theta, so every frequency scheme is a table built once here.
#pragma once

#include <vector>

#include "runtime/llama_weights.h"

namespace tandem {

// head_dim / 2 entries: pair j of every head turns by pos * table[j] radians.
// Unscaled, table[j] = theta^(-2j / head_dim), evaluated in double exactly as
// the kernels did before they took a table, so llama2.c models give the same
// bits. With config.rope_scaling (llama3), each entry is then scaled by
// Meta's formula (llama3_scaled_frequency).
std::vector<double> rope_inv_frequencies(const LlamaConfig& config);

// Llama 3.1's scaling of one rotary frequency (see RopeScaling).
double llama3_scaled_frequency(double freq, const RopeScaling& scaling);

}  // namespace tandem
