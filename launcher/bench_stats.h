// Small figures the `tandem bench` commands share.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace tandem::cli {

// The upper median (of an even count, the larger middle value): what the
// benchmarks print as "median of N".
inline double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace tandem::cli
