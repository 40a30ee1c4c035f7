// Small hashes the runtime derives reproducible values from. Their outputs
// are fixed by their definitions (never by a library version), which is what
// seeded initialisation, batch sampling and sampling seeds rely on.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tandem {

// splitmix64's output function (Steele, Lea, Flood 2014): a bijection on 64
// bits with full avalanche, so hash chains of it key values by any integers.
constexpr uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// FNV-1a 64 over bytes, continuing from `h` (start with kFnv1aOffset).
inline constexpr uint64_t kFnv1aOffset = 14695981039346656037ull;
inline uint64_t fnv1a(uint64_t h, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace tandem
