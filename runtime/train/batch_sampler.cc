// sample_batch and eval_batch (dataset.h): window positions from a counter-
// based hash, so a window depends on (seed, step, j) alone. No generator
// state to checkpoint, no dependence on which rank or micro-step asks, and no
// std:: distribution, whose output differs between standard libraries.
#include <cstdint>

#include "runtime/hash.h"
#include "runtime/train/dataset.h"

namespace tandem::train {
namespace {

// Separate streams so evaluation windows never coincide with training ones
// by construction of the hash input.
constexpr uint64_t kTrainStream = 0x7472'6169'6e00'0000ull;  // "train"
constexpr uint64_t kEvalStream = 0x6576'616c'0000'0000ull;   // "eval"

uint64_t hash4(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
  return splitmix64(splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ a) ^ b);
}

void check_shapes(std::span<const int> tokens, const BatchLayout& layout, std::span<int> inputs,
                  std::span<int> targets) {
  TANDEM_CHECK(layout.seq_len > 0 && layout.micro_batch > 0 && layout.accum > 0 && layout.dp > 0);
  TANDEM_CHECK_MSG(static_cast<int64_t>(tokens.size()) > layout.seq_len,
                   "check_corpus() must have accepted the tokens for this seq_len");
  const auto want = static_cast<size_t>(layout.micro_batch * layout.seq_len);
  TANDEM_CHECK(inputs.size() == want && targets.size() == want);
}

// Window `slot` of the output: inputs tokens[p, p + seq_len), targets one on.
// The start is uniform in [0, tokens - seq_len - 1] up to the modulo's bias,
// at most tokens / 2^64 (1e-9 for 16 billion tokens).
void fill_window(std::span<const int> tokens, uint64_t hash, int64_t seq_len, int64_t slot, std::span<int> inputs,
                 std::span<int> targets) {
  const auto starts = static_cast<uint64_t>(static_cast<int64_t>(tokens.size()) - seq_len);
  const auto p = static_cast<size_t>(hash % starts);
  const auto len = static_cast<size_t>(seq_len);
  const auto out = static_cast<size_t>(slot) * len;
  for (size_t t = 0; t < len; ++t) {
    inputs[out + t] = tokens[p + t];
    targets[out + t] = tokens[p + t + 1];
  }
}

}  // namespace

void sample_batch(std::span<const int> tokens, uint64_t seed, int64_t step, const BatchLayout& layout, int rank,
                  int64_t micro, std::span<int> inputs, std::span<int> targets) {
  check_shapes(tokens, layout, inputs, targets);
  TANDEM_CHECK(step >= 0 && rank >= 0 && rank < layout.dp && micro >= 0 && micro < layout.accum);
  const int64_t first = (rank * layout.accum + micro) * layout.micro_batch;
  for (int64_t i = 0; i < layout.micro_batch; ++i) {
    const auto j = static_cast<uint64_t>(first + i);
    fill_window(tokens, hash4(seed, kTrainStream, static_cast<uint64_t>(step), j), layout.seq_len, i, inputs,
                targets);
  }
}

void eval_batch(std::span<const int> tokens, uint64_t seed, int64_t index, const BatchLayout& layout,
                std::span<int> inputs, std::span<int> targets) {
  check_shapes(tokens, layout, inputs, targets);
  TANDEM_CHECK(index >= 0);
  // Numbered globally, so batches 0..k-1 cover the same windows whatever
  // micro_batch splits them.
  const int64_t first = index * layout.micro_batch;
  for (int64_t i = 0; i < layout.micro_batch; ++i) {
    const auto window = static_cast<uint64_t>(first + i);
    fill_window(tokens, hash4(seed, kEvalStream, window, 0), layout.seq_len, i, inputs, targets);
  }
}

}  // namespace tandem::train
