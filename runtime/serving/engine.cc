#include "runtime/serving/engine.h"

#include <cmath>
#include <utility>

namespace tandem::serving {

HistogramCounts::HistogramCounts(std::vector<double> bounds_)
    : bounds(std::move(bounds_)), counts(bounds.size() + 1, 0) {}

void HistogramCounts::observe(double value) {
  if (std::isnan(value)) return;
  size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  ++counts[i];
  sum += value;
  ++count;
}

std::vector<double> step_seconds_bounds() {
  return {0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2};
}

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "unknown";
}

}  // namespace tandem::serving
