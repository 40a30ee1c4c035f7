// Small figures the `tandem bench` commands share.
#pragma once

#include <algorithm>
#include <vector>

namespace tandem::cli {

// The upper median (of an even count, the larger middle value): what the
// benchmarks print as "median of N".
inline double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace tandem::cli
