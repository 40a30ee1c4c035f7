// Comparing secrets (API keys, job tokens) without saying through timing how
// much of a guess matched.
#pragma once

#include <algorithm>
#include <string_view>

namespace tandem {

// Constant in the secrets' content: every byte of the longer of the two is
// looked at, and a length mismatch only sets a bit.
inline bool equal_constant_time(std::string_view a, std::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

}  // namespace tandem
