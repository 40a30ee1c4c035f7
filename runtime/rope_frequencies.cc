#include "runtime/rope_frequencies.h"

#include <cmath>
#include <numbers>

namespace tandem {

double llama3_scaled_frequency(double freq, const RopeScaling& s) {
  const double original = static_cast<double>(s.original_context);
  const double wavelen = 2.0 * std::numbers::pi / freq;
  if (wavelen < original / s.high_freq_factor) return freq;
  if (wavelen > original / s.low_freq_factor) return freq / s.factor;
  // Between the bands: a linear blend in original / wavelen.
  const double smooth = (original / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1.0 - smooth) * freq / s.factor + smooth * freq;
}

std::vector<double> rope_inv_frequencies(const LlamaConfig& c) {
  const int64_t head_dim = c.head_dim();
  std::vector<double> table(static_cast<size_t>(head_dim / 2));
  for (int64_t j = 0; j < head_dim / 2; ++j) {
    const double freq =
        std::pow(static_cast<double>(c.rope_theta), -2.0 * static_cast<double>(j) / static_cast<double>(head_dim));
    table[static_cast<size_t>(j)] = c.rope_scaling.factor != 0.0f ? llama3_scaled_frequency(freq, c.rope_scaling) : freq;
  }
  return table;
}

}  // namespace tandem
