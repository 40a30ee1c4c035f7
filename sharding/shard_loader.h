// Loads one rank's part of a llama2.c checkpoint: the slices
// llama2c_weight_slices() names, and nothing else of the file is touched
// (the header's page apart). The result is an ordinary LlamaWeights whose
// tensors have the local shapes of runtime/llama_weights.h's LlamaShard and
// whose `shard` says which part of the model they are.
//
// Row slices (wq, wk, wv, w1, w3, vocab rows, norms) are contiguous in the
// file, so they stay views into the read-only mapping: no copy, and the OS
// pages in only what the kernels read. Column slices (wo's query-head
// columns, w2's MLP columns) are strided in the file; a kernel wants them
// dense, so they are copied row by row into one owned 64-byte-aligned
// allocation. `storage` keeps both the mapping and that memory alive.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/llama_weights.h"
#include "runtime/status.h"
#include "sharding/shard_plan.h"

namespace tandem::sharding {

// What a rank holds, for logs and tests: how much of it is the file's pages
// used in place and how much was copied.
struct ShardLoadReport {
  int rank = 0;
  uint64_t mapped_bytes = 0;  // contiguous slices: views into the mapping, no copy
  uint64_t copied_bytes = 0;  // strided slices (wo, w2 columns) copied into owned memory
  uint64_t file_bytes = 0;    // the whole checkpoint
  uint64_t model_weight_bytes = 0;  // the whole model's weights once (plan.total_weight_bytes)
  // == plan.ranks[rank].weight_bytes
  uint64_t held_bytes() const { return mapped_bytes + copied_bytes; }
  // "rank 1 holds 49.8% of the weights (0.52 MB of 1.04 MB; file 1.06 MB):
  // 0.37 MB mapped in place, 0.15 MB copied"
  std::string describe() const;
};

// Rank `rank`'s part of the llama2.c checkpoint at `path` under `plan` (an f32
// plan). The file is validated as load_llama2c validates it (same errors:
// NotFound, DataLoss for a short or truncated file, OutOfRange / InvalidArgument
// for a bad header); its shape must be plan.model's (FailedPrecondition naming
// both otherwise; the header carries no rope_theta or norm_eps, so those are
// not compared and `config` is the file's, as load_llama2c gives it).
// InvalidArgument for a rank outside the plan or a plan llama2c_weight_slices
// refuses. Layers are only the stage's (layers[i] is model layer
// shard.first_layer + i); the embedding without holds_embedding, and the final
// norm and classifier without holds_classifier, stay unset (null data). A
// shared classifier on a rank that also embeds is the embedding's view.
Result<LlamaWeights> load_llama2c_shard(const std::string& path, const ShardPlan& plan, int rank,
                                        ShardLoadReport* report = nullptr);

}  // namespace tandem::sharding
