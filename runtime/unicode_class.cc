#include "runtime/unicode_class.h"

#include <algorithm>

namespace tandem {

uint8_t unicode_class(char32_t cp) {
  const unicode_table::ClassRange* begin = unicode_table::kRanges;
  const unicode_table::ClassRange* end = begin + unicode_table::kRangeCount;
  // The first range ending at or after cp; cp is in it if it starts at or before cp.
  const auto* it = std::lower_bound(begin, end, cp,
                                    [](const unicode_table::ClassRange& r, char32_t c) { return r.last < c; });
  return (it != end && it->first <= cp) ? it->classes : 0;
}

const char* unicode_table_version() { return unicode_table::kVersion; }

Utf8Unit next_utf8(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return {lead, 1};
  size_t len = 0;
  char32_t cp = 0, min = 0;
  if ((lead & 0xE0) == 0xC0) {
    len = 2, cp = lead & 0x1F, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    len = 3, cp = lead & 0x0F, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    len = 4, cp = lead & 0x07, min = 0x10000;
  } else {
    return {kInvalidUtf8, 1};
  }
  if (text.size() - pos < len) return {kInvalidUtf8, 1};
  for (size_t i = 1; i < len; ++i) {
    if ((byte(pos + i) & 0xC0) != 0x80) return {kInvalidUtf8, 1};
    cp = (cp << 6) | (byte(pos + i) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {kInvalidUtf8, 1};
  return {cp, len};
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace tandem
