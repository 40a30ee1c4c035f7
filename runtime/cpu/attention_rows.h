// Where attention's positions live in a KV cache, for the per-ISA attention
// templates (kernels_scalar.cc, kernels_avx2.cc, kernels_neon.cc): each
// layout's for_each_run(fn) calls fn(first, count, row0) for each run of
// positions [first, first + count) held in the consecutive cache rows row0,
// row0 + 1, ..., in position order. One template per ISA serves both layouts,
// so contiguous and paged attention cannot drift apart. Plain C++: every ISA
// file includes it under its own flags.
#pragma once

#include <algorithm>
#include <cstdint>

namespace tandem::cpu {

struct ContiguousRows {
  int64_t n_pos;
  template <class Fn>
  void for_each_run(Fn&& fn) const {
    fn(int64_t{0}, n_pos, int64_t{0});
  }
};

// Position p at pool row block_table[p / block_size] * block_size + p % block_size,
// walked block by block so the division happens once per block.
struct PagedRows {
  int64_t n_pos;
  const int32_t* block_table;
  int64_t block_size;
  template <class Fn>
  void for_each_run(Fn&& fn) const {
    for (int64_t first = 0; first < n_pos; first += block_size) {
      fn(first, std::min(block_size, n_pos - first), static_cast<int64_t>(block_table[first / block_size]) * block_size);
    }
  }
};

}  // namespace tandem::cpu
