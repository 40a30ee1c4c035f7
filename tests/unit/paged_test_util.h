// Batched-forward scripts for the paged KV tests: steps of several
// sequences, each a prefill chunk or one decode token, sequences joining and
// leaving (their blocks taken from and returned to a BlockAllocator).
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "runtime/llama_model.h"
#include "runtime/paged_kv.h"

namespace tandem::paged_test {

inline double max_relative_error(const std::vector<float>& want, const std::vector<float>& got) {
  if (want.size() != got.size()) return INFINITY;
  double scale = 0, diff = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::fabs(double(want[i])));
    diff = std::max(diff, std::fabs(double(want[i]) - got[i]));
  }
  return diff / std::max(scale, 1e-12);
}

// Takes every block and gives them back in a random order: the allocator
// then hands out shuffled, non-contiguous blocks.
inline void shuffle_pool(BlockAllocator& allocator, unsigned seed) {
  std::vector<int32_t> all;
  if (!allocator.allocate(allocator.free_blocks(), all).ok()) return;
  std::shuffle(all.begin(), all.end(), std::mt19937(seed));
  allocator.release(all);
}

struct Part {
  int seq = 0;
  std::vector<int> tokens;
  int64_t start_pos = 0;
  bool want_logits = true;
  bool finishes = false;  // the sequence leaves after this step (its blocks freed)
};

struct BatchScript {
  std::vector<std::vector<Part>> steps;

  int sequences() const {
    int n = 0;
    for (const auto& step : steps)
      for (const Part& p : step) n = std::max(n, p.seq + 1);
    return n;
  }

  // Runs every step through forward_batch (and, with `ids`, the same step
  // again through forward_batch_argmax: it rewrites the same keys), growing
  // each sequence's block table as its positions need. `got`: the wanted
  // logits, in order. Sharded: every rank runs it; results on the leader.
  Status run(LlamaModel& model, BlockAllocator& allocator, std::vector<std::vector<float>>& got,
             std::vector<int32_t>* ids = nullptr) const {
    const int64_t vocab = model.config().vocab_size, bs = model.paged_kv().block_size;
    std::map<int, std::vector<int32_t>> tables;
    for (const auto& step : steps) {
      std::vector<SequenceStep> batch;
      int64_t wanted = 0;
      for (const Part& p : step) {
        std::vector<int32_t>& table = tables[p.seq];
        const int64_t need = kv_blocks_for(p.start_pos + static_cast<int64_t>(p.tokens.size()), bs);
        if (need > static_cast<int64_t>(table.size()))
          TANDEM_RETURN_IF_ERROR(allocator.allocate(need - static_cast<int64_t>(table.size()), table));
      }
      for (const Part& p : step) {
        batch.push_back(SequenceStep{p.tokens, p.start_pos, tables[p.seq], p.want_logits});
        wanted += p.want_logits ? 1 : 0;
      }
      std::vector<float> logits(model.leader() ? wanted * vocab : 0);
      TANDEM_RETURN_IF_ERROR(model.forward_batch(batch, logits));
      for (int64_t i = 0; i < wanted && model.leader(); ++i)
        got.emplace_back(logits.begin() + i * vocab, logits.begin() + (i + 1) * vocab);
      if (ids != nullptr) {
        std::vector<int32_t> best(model.leader() ? wanted : 0);
        TANDEM_RETURN_IF_ERROR(model.forward_batch_argmax(batch, best));
        ids->insert(ids->end(), best.begin(), best.end());
      }
      for (const Part& p : step)
        if (p.finishes) allocator.release(tables[p.seq]);
    }
    for (auto& [seq, table] : tables) allocator.release(table);
    return Status::Ok();
  }
};

// Five sequences over six steps: prompts of 5, 1, 11 (in chunks of 6 and 5),
// 3 and 7 tokens; sequence 1 leaves after step 2 and sequence 4 joins at step
// 3 in the blocks it freed; the others decode a token a step.
inline BatchScript mixed_script(int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  auto tokens = [&](int n) {
    std::vector<int> t(n);
    for (int& v : t) v = static_cast<int>(rng() % vocab);
    return t;
  };
  BatchScript s;
  s.steps.push_back({{0, tokens(5), 0}, {1, tokens(1), 0}, {2, tokens(6), 0, false}});
  s.steps.push_back({{0, tokens(1), 5}, {1, tokens(1), 1}, {2, tokens(5), 6}, {3, tokens(3), 0}});
  s.steps.push_back({{0, tokens(1), 6}, {1, tokens(1), 2, true, true}, {2, tokens(1), 11}, {3, tokens(1), 3}});
  s.steps.push_back({{0, tokens(1), 7}, {2, tokens(1), 12}, {3, tokens(1), 4}, {4, tokens(7), 0}});
  s.steps.push_back({{3, tokens(1), 5}, {0, tokens(1), 8}, {4, tokens(1), 7}, {2, tokens(1), 13, false}});
  s.steps.push_back({{4, tokens(1), 8}, {0, tokens(1), 9}});
  return s;
}

}  // namespace tandem::paged_test
