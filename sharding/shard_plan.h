// ShardPlan: which part of a Llama-family model each rank holds, when the
// model is split tp ways by tensor parallelism (Megatron-style: attention heads
// and MLP columns, one all-reduce after the attention output projection and one
// after the MLP down projection) and pp ways by pipeline parallelism (layer
// ranges). A pure function of the model's shape: no files, no network.
//
// Ranks: rank = stage * tp + tp_rank, so the tp ranks of one stage are
// consecutive (they all-reduce every layer; the stages only hand activations
// on). One rank per node.
//
// How each piece is split (ranges are half-open [begin, end), contiguous):
//  - layers: stage s gets n_layers / pp layers, the first n_layers % pp stages
//    one more (5 layers, pp=2: [0,3) and [3,5)).
//  - attention: tp must divide n_heads, and either divide n_kv_heads (each rank
//    holds whole KV groups: its KV heads and every query head that reads them)
//    or be a multiple of n_kv_heads (each KV head is replicated on
//    tp / n_kv_heads ranks, each holding a part of that head's query group).
//    wq/wk/wv are split by rows, wo by columns.
//  - MLP: hidden_dim is split by columns (rows of w1 and w3, columns of w2).
//    An uneven split is allowed: the down projection's all-reduce sums
//    dim-sized partial outputs whatever widths produced them, so it only
//    costs balance. The unit is the dtype's block (32 for Q8_0/Q4_0, 1 for
//    plain types): the first (hidden/unit) % tp ranks get one unit more;
//    hidden_dim must be a multiple of the unit.
//  - vocabulary: the embedding (first stage) and the classifier (last stage)
//    are split by vocab rows, as evenly as possible: the first vocab % tp ranks
//    get one row more. A vocab-parallel embedding looks up the tokens in its
//    range and the stage all-reduces; the vocab-parallel logits are gathered,
//    padded to the largest range (ceil(vocab / tp)).
//  - norms (attention, MLP, final) are small and replicated on every tp rank
//    of the stage that uses them.
//
// Bytes: matrices count in `weight_dtype` (its block size and bytes); norms
// always count as f32, as GGUF and the runtime keep them. With a shared
// classifier (the classifier is the embedding table) and pp > 1, the last
// stage holds its own copy of its vocab rows; with pp == 1 one copy serves
// both. Only weights are counted: the KV cache and activations are the memory
// planner's business.
//
// Refused with InvalidArgument naming the reason: a shape that does not
// validate(), tp or pp < 1, tp that splits the heads unevenly or mixes KV
// groups, pp > n_layers, tp * pp != the number of nodes (when node memory is
// given), a non-weight dtype, and block dtypes whose blocks a split would cut.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/llama_weights.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace tandem::sharding {

// Half-open [begin, end) over some index (layers, heads, columns, vocab rows).
struct IndexRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool contains(int64_t i) const { return begin <= i && i < end; }
  bool operator==(const IndexRange&) const = default;
};

struct RankShard {
  int rank = 0;        // stage * tp + tp_rank
  int stage = 0;       // pipeline stage, 0 .. pp-1
  int tp_rank = 0;     // position within the stage, 0 .. tp-1
  IndexRange layers;   // [first, last) layers this stage runs
  IndexRange q_heads;  // query heads (rows of wq / columns of wo, in head_dim units)
  IndexRange kv_heads; // KV heads (rows of wk, wv); one replicated head when tp > n_kv_heads
  IndexRange hidden;   // MLP columns: rows of w1 (gate) and w3 (up), columns of w2 (down)
  IndexRange vocab;    // embedding / classifier rows, used on the first / last stage
  bool holds_embedding = false;   // first stage
  bool holds_classifier = false;  // last stage (with the final norm)
  uint64_t weight_bytes = 0;      // everything above, in the plan's dtype
  uint64_t node_memory_bytes = 0; // 0: not given
  bool fits = true;               // weight_bytes <= node_memory_bytes (true when not given)
};

struct ShardPlan {
  LlamaConfig model;
  int tp = 1;
  int pp = 1;
  DType weight_dtype = DType::kF32;
  int kv_replication = 1;         // ranks holding each KV head: tp / n_kv_heads when larger
  uint64_t total_weight_bytes = 0;  // the whole model once (a shared classifier once)
  bool fits = true;                 // every rank fits (true when no memory was given)
  std::vector<RankShard> ranks;     // ranks[r].rank == r
  std::vector<std::string> notes;   // what a reader should know: replication, imbalance, misfits

  const RankShard& at(int stage, int tp_rank) const { return ranks[stage * tp + tp_rank]; }
};

// node_memory_bytes: one entry per node (node i runs rank i); empty skips the
// node-count and memory checks. A rank that does not fit is reported (fits,
// notes), not refused: the caller decides whether to go on.
Result<ShardPlan> make_shard_plan(const LlamaConfig& model, int tp, int pp,
                                  const std::vector<uint64_t>& node_memory_bytes,
                                  DType weight_dtype = DType::kF32);

// Bytes of a [rows, cols] matrix in `dtype`; cols must be a multiple of the
// dtype's block (make_shard_plan checks that for every slice it makes).
uint64_t matrix_bytes(int64_t rows, int64_t cols, DType dtype);

}  // namespace tandem::sharding
