#include "runtime/paged_kv.h"

#include <cstdio>
#include <cstdlib>

namespace tandem {

BlockAllocator::BlockAllocator(int64_t num_blocks) : total_(num_blocks), in_use_(static_cast<size_t>(num_blocks)) {
  free_.reserve(static_cast<size_t>(num_blocks));
  // Highest id at the bottom of the stack: a fresh pool hands out 0, 1, 2...
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

Status BlockAllocator::allocate(int64_t n, std::vector<int32_t>& table) {
  if (n < 0) return InvalidArgument("cannot allocate " + std::to_string(n) + " KV blocks");
  if (n > free_blocks()) {
    return ResourceExhausted("KV cache: " + std::to_string(n) + " blocks wanted, " +
                             std::to_string(free_blocks()) + " of " + std::to_string(total_) + " free");
  }
  for (int64_t i = 0; i < n; ++i) {
    const int32_t block = free_.back();
    free_.pop_back();
    in_use_[static_cast<size_t>(block)] = true;
    table.push_back(block);
  }
  return Status::Ok();
}

void BlockAllocator::release(std::vector<int32_t>& table) {
  for (const int32_t block : table) {
    if (block < 0 || block >= total_ || !in_use_[static_cast<size_t>(block)]) {
      std::fprintf(stderr, "BlockAllocator::release: block %d is not allocated\n", block);
      std::abort();
    }
    in_use_[static_cast<size_t>(block)] = false;
    free_.push_back(block);
  }
  table.clear();
}

}  // namespace tandem
