// What the `tandem bench` commands share: the median of their figures and
// the parser of their list flags (--batches, --tokens).
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace tandem::cli {

// The upper median (of an even count, the larger middle value): what the
// benchmarks print as "median of N".
inline double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// A flag's comma-separated counts ("1,4,16"), each in [lo, hi]; the errors
// name the flag.
inline Result<std::vector<int64_t>> parse_count_list(const std::string& flag, const std::string& list, int64_t lo,
                                                     int64_t hi) {
  std::vector<int64_t> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    int64_t n = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), n);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size())
      return InvalidArgument(flag + ": '" + item + "' is not a number");
    if (n < lo || n > hi)
      return InvalidArgument(flag + ": " + item + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    out.push_back(n);
  }
  if (out.empty()) return InvalidArgument(flag + " is empty");
  return out;
}

}  // namespace tandem::cli
