// Helpers the tokenizer's source files share; not a public interface.
#pragma once

#include <string_view>

namespace tandem::tokenizer_internal {

// llama2.c starts its best-pair search at -1e10 with a strict '>', so pairs
// scoring at or below it never merge; kept for identical output.
inline constexpr float kNoMergeScore = -1e10f;

inline int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The byte a "<0xNN>" piece stands for, or -1 for any other piece.
inline int byte_piece_value(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  const int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

}  // namespace tandem::tokenizer_internal
