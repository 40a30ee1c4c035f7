// ModelSource (any file format) -> the LlamaWeights of the whole model or of
// one rank's part of it, in dtypes the backend computes with.
//
// What it does, once for every format:
//  - slicing: a part takes layers, query/KV heads (rows of wq/wk/wv, columns
//    of wo), MLP columns (rows of w_gate/w_up, columns of w_down) and vocab
//    rows; a column slice of a block-quantized tensor must start and end on
//    block boundaries, or the part is refused naming the tensor, the column
//    and the block (a tp that cuts a Q4_K super-block cannot be served);
//  - rotate-half checkpoints: Q and K rows (and Q/K biases and norms) are put
//    into the interleaved order the model's RoPE rotates (ModelSource's
//    RopeLayout);
//  - dtypes: a matrix stays in its file dtype when the backend computes with
//    it, and is converted otherwise (Q4_K where not computed with and Q6_K ->
//    q8_0, f16/fp8 -> bf16, else f32; see choose_weight_dtype); norms and
//    biases are always f32.
//
// A matrix that needs no change is a view into the source's mapping (nothing
// read until the kernels touch it); everything else is copied into memory the
// weights own, among it every f32 matrix when the options ask for the CPU's
// f32 panels (runtime/panel_layout.h). The weights keep the source's mappings alive.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/llama_weights.h"
#include "runtime/model_source.h"
#include "runtime/status.h"

namespace tandem {

// Which part of the model to take, in the model's own units. `shard` is what
// the weights will say they hold (runtime/llama_weights.h).
struct ModelPart {
  LlamaShard shard;
  int64_t n_layers = 0;       // layers [shard.first_layer, + n_layers)
  int64_t q_head_begin = 0;   // query heads [q_head_begin, + shard.n_heads)
  int64_t kv_head_begin = 0;  // KV heads [kv_head_begin, + shard.n_kv_heads)
  int64_t hidden_begin = 0;   // MLP columns [hidden_begin, + shard.hidden_dim)
};

// The whole model as one part.
ModelPart whole_model_part(const LlamaConfig& config);

struct AssemblyOptions {
  // Weight dtypes the backend computes with (Backend::computes_with); f32 is
  // assumed whatever this says.
  std::vector<DType> backend_dtypes = {DType::kF32};
  // Store every matrix in this dtype instead (quantize on load). A matrix
  // whose rows do not fit its blocks then takes the file's choice, noted.
  std::optional<DType> weight_dtype;
  // Copy an f32 matrix whose rows the mapping does not start on 64-byte
  // boundaries (a llama2.c header is 28 bytes) instead of viewing it: the
  // CPU's batched matmul loads 64-byte vectors along rows, and split loads
  // cost it ~25% (docs/benchmarks.md). Off, f32 matrices are views wherever
  // they lie; a GPU backend copies the weights to its memory anyway.
  bool align_f32_rows = false;
  // Store every f32 matrix as f32_panels (runtime/panel_layout.h), which the
  // CPU's AVX-512 matmul reads 7-40% faster at 2-64 tokens. Only for a model
  // that is run, not trained: the layout is read by the CPU backend's matmul
  // and embedding lookup alone.
  bool f32_panels = false;
};

// What a backend of `kind` wants: the dtypes it computes with, aligned f32
// rows for the CPU, and f32 panels where the CPU's ISA gains from them
// (cpu::panels_pay()).
AssemblyOptions assembly_options_for(BackendKind kind);

struct AssemblyReport {
  uint64_t mapped_bytes = 0;     // tensors used in place in the mapping
  uint64_t converted_bytes = 0;  // copied, converted or reordered into owned memory
  std::vector<std::string> notes;  // conversions made, one line per kind
};

// The dtype a matrix stored as `stored` is given, for a backend computing
// with `backend_dtypes` (f32 always possible).
DType choose_weight_dtype(SourceDType stored, const std::vector<DType>& backend_dtypes);

// InvalidArgument for a part outside the model or cutting a block;
// ResourceExhausted when owned memory cannot be allocated. Attention biases
// (sliced with their rows), Q/K norms and the config's rope scaling and
// head_dim come through to the weights as they are.
Result<LlamaWeights> assemble_weights(const ModelSource& source, const ModelPart& part,
                                      const AssemblyOptions& options,
                                      AssemblyReport* report = nullptr);

}  // namespace tandem
