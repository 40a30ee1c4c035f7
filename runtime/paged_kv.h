// A paged KV cache (vLLM's PagedAttention layout): each layer's keys and
// values live in a pool of fixed-size blocks of `block_size` positions, and
// each sequence owns a block table, the blocks that hold its positions in
// order (position p is row p % block_size of block table[p / block_size]).
// Sequences of different lengths then share one pool without fragmentation,
// join and leave a running batch at any step, and free exactly what they
// held.
//
// The scheduler owns the bookkeeping (BlockAllocator: which blocks are free)
// and hands the model each step's block tables; the model owns the pool's
// memory (LlamaModelOptions::kv_blocks) and never allocates blocks itself.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/status.h"

namespace tandem {

struct PagedKvConfig {
  int64_t block_size = 16;  // positions per block
  int64_t num_blocks = 0;   // blocks in the pool (per layer, per rank)
};

// Blocks needed to hold `positions` positions.
inline int64_t kv_blocks_for(int64_t positions, int64_t block_size) {
  return (positions + block_size - 1) / block_size;
}

// Which blocks of the pool are free. Not thread-safe (the scheduler's thread
// owns it).
class BlockAllocator {
 public:
  explicit BlockAllocator(int64_t num_blocks);
  // Appends `n` free blocks to `table`; ResourceExhausted (nothing taken) when
  // fewer than n are free.
  Status allocate(int64_t n, std::vector<int32_t>& table);
  // Returns the table's blocks to the pool and clears it. A block id that is
  // out of range or already free is a programmer bug (aborts).
  void release(std::vector<int32_t>& table);
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t total_blocks() const { return total_; }
  int64_t used_blocks() const { return total_ - free_blocks(); }

 private:
  int64_t total_;
  std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
  std::vector<bool> in_use_;
};

// One sequence's part of a batched forward: its new tokens at positions
// [start_pos, start_pos + tokens.size()), attending to its own positions
// [0, start_pos + t] only. block_table covers at least every position up to
// start_pos + tokens.size() - 1.
struct SequenceStep {
  std::span<const int> tokens;
  int64_t start_pos = 0;
  std::span<const int32_t> block_table;
  bool want_logits = true;  // the last token's logits for this sequence
};

// Runs one batched forward of every sequence (keys and values written into
// their blocks) and writes, for each sequence with want_logits, in order, its
// last token's logits: logits is [count(want_logits), vocab] row-major.
// Sharded: every rank runs the same call (launcher/lockstep.h announces it);
// the logits are defined on the leader only.
using BatchForwardFn = std::function<Status(std::span<const SequenceStep> sequences, std::span<float> logits)>;

// The same forward, returning for each sequence with want_logits, in order,
// its greedy token instead of its logits: the first of the equal largest
// logits, a NaN never winning unless all are (Sampler::argmax's rule), taken
// where the logits are, so a vocab-parallel model exchanges one (logit, id)
// pair per row and shard instead of every row's whole vocabulary.
using BatchArgmaxFn = std::function<Status(std::span<const SequenceStep> sequences, std::span<int32_t> tokens)>;

}  // namespace tandem
