// Where a rank's weights lie in a llama2.c checkpoint, so a loader maps and
// reads only those bytes, never the whole model. Pure arithmetic over a
// ShardPlan and its config: no file is opened.
//
// The llama2.c layout (runtime/llama2c_loader.h): a 28-byte header, then f32
// tensors, each kind for all layers together: embedding [vocab, dim],
// attn_norm [L][dim], wq [L][n_heads*head_dim, dim], wk [L][kv_dim, dim],
// wv [L][kv_dim, dim], wo [L][dim, n_heads*head_dim], ffn_norm [L][dim],
// w1 [L][hidden, dim], w2 [L][dim, hidden], w3 [L][hidden, dim],
// final_norm [dim], the legacy RoPE tables [seq_len * head_dim] (never read),
// and the classifier [vocab, dim] only when it is not shared.
//
// Matrices are row-major [out, in]. A row slice (wq, wk, wv, w1, w3, the
// vocab rows) is one contiguous run; a column slice (wo's query-head columns,
// w2's hidden columns) is strided: `rows` runs of `bytes_per_row` bytes,
// `row_stride` bytes apart, which a loader copies row by row. Norms are one
// row. Every offset and length fits in uint64 with room to spare: validate()
// bounds the shape (llama_weights.h limits) before anything is multiplied.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/llama_weights.h"
#include "runtime/status.h"
#include "sharding/shard_plan.h"

namespace tandem::sharding {

struct WeightSlice {
  std::string tensor;       // "embedding", "layers.3.wq", "final_norm", "classifier"
  int64_t layer = -1;       // -1 for the tensors outside the layers
  // The whole tensor as [tensor_rows, tensor_cols] elements (a norm is [1, dim]),
  // and the part of it this slice takes.
  int64_t tensor_rows = 0;
  int64_t tensor_cols = 0;
  IndexRange row_range;
  IndexRange col_range;
  // The bytes in the file: `rows` runs of `bytes_per_row`, the first at
  // `offset`, each next one `row_stride` further on.
  uint64_t offset = 0;
  uint64_t rows = 0;
  uint64_t row_stride = 0;
  uint64_t bytes_per_row = 0;

  uint64_t bytes() const { return rows * bytes_per_row; }
  // One run: a loader can map [offset, offset + bytes()) as it is.
  bool contiguous() const { return rows <= 1 || row_stride == bytes_per_row; }
};

// Every slice rank `rank` of `plan` reads, in file order. A shared classifier
// on a last stage that is not also the first appears as "classifier" slicing
// the embedding's bytes; when one rank holds both, the embedding slice serves
// both and appears once. The slices' bytes add up to the rank's weight_bytes.
// InvalidArgument for a rank outside the plan, a plan whose dtype is not f32
// (llama2.c stores f32) or whose ranges fall outside its model.
Result<std::vector<WeightSlice>> llama2c_weight_slices(const ShardPlan& plan, int rank);

struct FileRange {
  std::string what;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// The bytes of a llama2.c file that no rank reads: the header and the legacy
// RoPE tables. With every rank's slices they cover the whole file.
Result<std::vector<FileRange>> llama2c_unread_ranges(const LlamaConfig& model);

}  // namespace tandem::sharding
