// A Llama model that trains: the forward of runtime/llama_model.h's
// architecture (RMSNorm, RoPE in llama2.c's interleaved layout, causal
// grouped-query attention, SwiGLU, untied classifier) with its backward, on
// the CPU in f32, optionally tensor-parallel as inference shards it
// (sharding/shard_plan.h): query/KV heads and MLP columns split, the
// embedding and classifier split by vocabulary rows, norms replicated.
//
// Parameters, gradients (and, in Trainer, the AdamW moments) are each one
// flat float array laid out in forward order:
//   tok_embeddings, then per layer attention_norm, wq, wk, wv, wo, ffn_norm,
//   w1 (gate), w2 (down), w3 (up), then norm, output (the classifier).
// The backward finishes them from the end backwards, which is what lets
// data parallelism all-reduce the tail of the gradient while the backward
// still works on the head (on_grads_final).
//
// Tensor parallelism exchanges (through TrainComm, tp ranks only):
//  forward: embedding all-reduce; after wo and after w2 an all-reduce;
//           vocab-parallel softmax statistics for the loss.
//  backward: the gradients of the normed inputs of wq/wk/wv and w1/w3, and
//           of the final norm's output, all-reduced (Megatron's f operator).
// So replicated norms get identical gradients on every rank, and a tp=2
// step equals the tp=1 step.
//
// Memory is planned at create() for `max_batch` sequences: no allocation
// per step.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/status.h"
#include "runtime/thread_pool.h"
#include "runtime/train/train_comm.h"

namespace tandem::train {

struct TrainShape {
  int64_t dim = 128;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 4;
  int64_t hidden_dim = 352;  // SwiGLU width
  int64_t vocab_size = 68;
  int64_t seq_len = 64;  // the block size: positions trained, and the exported max_seq_len
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  int64_t head_dim() const { return dim / n_heads; }
  bool operator==(const TrainShape&) const = default;
};

// InvalidArgument naming the field: sizes < 1, dim % n_heads, n_heads %
// n_kv_heads, an odd head_dim, vocab beyond the llama2.c limit.
Status validate_train_shape(const TrainShape& shape);

struct TensorParallelRank {
  int tp = 1;
  int rank = 0;
};

// InvalidArgument unless tp divides n_heads and n_kv_heads (training does
// not replicate KV heads) and tp <= hidden_dim, vocab_size.
Status check_tensor_parallel(const TrainShape& shape, TensorParallelRank tp);

// One tensor in the flat arrays. A tensor-parallel shard holds rows
// [row_begin, row_begin + rows) and columns [col_begin, col_begin + cols) of
// the full [full_rows, full_cols] tensor.
struct ParamTensor {
  std::string name;  // llama2.c / Meta names: "layers.0.attention.wq"
  int64_t offset = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t full_rows = 0;
  int64_t full_cols = 0;
  int64_t row_begin = 0;
  int64_t col_begin = 0;
  int layer = -1;           // -1: the embedding; n_layers: the final norm and the classifier
  bool decay = false;       // matrices and the embedding decay; norms do not
  bool replicated = false;  // the same on every tp rank (the norms)
  int64_t numel() const { return rows * cols; }
};

// grads[offset, end) will not change again in this forward_backward.
using GradsFinalFn = std::function<void(int64_t offset)>;

class TrainModel {
 public:
  // tp_comm: the tensor-parallel group (size tp.tp), may be null when tp.tp == 1.
  // pool: compute threads (nullptr: the calling thread only).
  static Result<std::unique_ptr<TrainModel>> create(const TrainShape& shape, TensorParallelRank tp,
                                                    TrainComm* tp_comm, ThreadPool* pool, int64_t max_batch);
  virtual ~TrainModel() = default;

  virtual const TrainShape& shape() const = 0;
  virtual TensorParallelRank tensor_parallel() const = 0;
  virtual const std::vector<ParamTensor>& tensors() const = 0;
  virtual std::span<float> params() = 0;
  virtual std::span<float> grads() = 0;
  // Bytes of activations and workspace planned at create().
  virtual size_t workspace_bytes() const = 0;

  // Seeded initialisation (nanoGPT's: N(0, 0.02) for matrices and the
  // embedding, 0.02 / sqrt(2 * n_layers) for wo and w2, norms 1). Every
  // element is a function of (seed, tensor, full row, full column) only, so
  // tp ranks together hold exactly the tp=1 initialisation.
  virtual void init(uint64_t seed) = 0;
  virtual void zero_grads() = 0;

  // Forward and backward of `batch` sequences (<= max_batch) of seq_len
  // tokens: inputs, targets [batch * seq_len] ids in [0, vocab)
  // (InvalidArgument otherwise). grads += grad_scale * d(mean loss)/d(params).
  // Returns the mean cross-entropy over the batch's tokens (nats), the same
  // on every tp rank. A TrainComm failure is returned as is.
  virtual Result<double> forward_backward(std::span<const int> inputs, std::span<const int> targets,
                                          int64_t batch, float grad_scale,
                                          const GradsFinalFn& on_grads_final = {}) = 0;
  // The mean loss without gradients (evaluation).
  virtual Result<double> loss(std::span<const int> inputs, std::span<const int> targets, int64_t batch) = 0;

  // Every tp rank calls it; each receives the full parameters in the tp=1
  // flat layout (what a tp=1 model's params() would hold).
  virtual Status gather_full(std::vector<float>* full) = 0;
};

// The tensors of a tp=1 model of `shape` (the layout gather_full fills).
std::vector<ParamTensor> full_layout(const TrainShape& shape);

// Writes full tp=1 parameters as a llama2.c checkpoint (runtime/llama2c_writer.h,
// untied classifier) that load_llama2c and `tandem generate` read.
Status export_llama2c(const TrainShape& shape, std::span<const float> full_params, const std::string& path);

}  // namespace tandem::train
