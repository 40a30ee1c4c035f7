// TrainModel's implementation, shared by the files it is split into:
// train_model_layout.cc (shapes, the flat layout, the seeded init),
// train_model.cc (planning, checks, gather), train_model_forward.cc (the
// forward and the vocab-parallel loss), train_model_backward.cc.
// Internal to runtime/train; users see train_model.h only.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/train/train_model.h"

namespace tandem::train::detail {

// A layer's tensors in flat order; tensor i of layer l is at index
// 1 + l * kTensorsPerLayer + i (the embedding is index 0).
enum LayerTensor : int {
  kAttentionNorm = 0,
  kWq,
  kWk,
  kWv,
  kWo,
  kFfnNorm,
  kW1,  // gate
  kW2,  // down
  kW3,  // up
  kTensorsPerLayer,
};
inline int64_t layer_tensor_index(int64_t layer, LayerTensor t) { return 1 + layer * kTensorsPerLayer + t; }
inline int64_t final_norm_index(const TrainShape& s) { return 1 + s.n_layers * kTensorsPerLayer; }
inline int64_t classifier_index(const TrainShape& s) { return final_norm_index(s) + 1; }

// What one tensor-parallel rank holds of each split dimension.
struct LocalDims {
  int64_t q_heads = 0;
  int64_t kv_heads = 0;
  int64_t q_dim = 0;   // q_heads * head_dim
  int64_t kv_dim = 0;  // kv_heads * head_dim
  int64_t hidden_begin = 0;
  int64_t hidden = 0;
  int64_t vocab_begin = 0;
  int64_t vocab = 0;
};
LocalDims local_dims(const TrainShape& shape, TensorParallelRank tp);

// The tensors rank tp.rank holds, offsets packed in flat order.
std::vector<ParamTensor> shard_layout(const TrainShape& shape, TensorParallelRank tp);
int64_t total_numel(const std::vector<ParamTensor>& layout);

// Fills `params` (laid out as `layout`) with the seeded initialisation: each
// element a function of (seed, tensor index, full row, full column) only.
void init_params(const TrainShape& shape, const std::vector<ParamTensor>& layout, uint64_t seed,
                 std::span<float> params);

// What the backward needs of one layer's forward, [rows, width] row-major.
struct LayerActivations {
  float* x_in = nullptr;       // the residual stream entering the layer [rows, dim]
  float* attn_rstd = nullptr;  // [rows]
  float* attn_in = nullptr;    // rmsnorm(x_in): the input of wq, wk, wv [rows, dim]
  float* q = nullptr;          // after RoPE [rows, q_dim]
  float* k = nullptr;          // after RoPE [rows, kv_dim]
  float* v = nullptr;          // [rows, kv_dim]
  float* probs = nullptr;      // the attention softmax [batch, q_heads, seq, seq]
  float* att = nullptr;        // the attention output, the input of wo [rows, q_dim]
  float* x_mid = nullptr;      // x_in + the attention block [rows, dim]
  float* ffn_rstd = nullptr;   // [rows]
  float* ffn_in = nullptr;     // rmsnorm(x_mid): the input of w1, w3 [rows, dim]
  float* gate = nullptr;       // [rows, hidden]
  float* up = nullptr;         // [rows, hidden]
  float* act = nullptr;        // silu(gate) * up: the input of w2 [rows, hidden]
};

// Every buffer a step uses, carved from one allocation sized for max_batch
// sequences (a step of fewer uses the first rows of each).
struct Workspace {
  std::vector<LayerActivations> layers;
  float* x_final = nullptr;      // the residual stream after the last layer [rows, dim]
  float* final_rstd = nullptr;   // [rows]
  float* final_out = nullptr;    // rmsnorm(x_final): the classifier's input [rows, dim]
  float* logits = nullptr;       // this shard's vocabulary [rows, vocab]
  float* dlogits = nullptr;      // [rows, vocab]
  float* row_max = nullptr;      // vocab-parallel softmax statistics [rows]
  float* row_sums = nullptr;     // [2 * rows]: sum of exp, the target's logit
  float* projection = nullptr;   // the outputs of wo and w2 before the residual add [rows, dim]
  float* d_resid = nullptr;      // the gradient of the residual stream [rows, dim]
  float* d_normed = nullptr;     // the gradient of a norm's output [rows, dim]
  float* d_norm_in = nullptr;    // the gradient of a norm's input, before it joins d_resid [rows, dim]
  float* d_q = nullptr;          // [rows, q_dim]
  float* d_k = nullptr;          // [rows, kv_dim]
  float* d_v = nullptr;          // [rows, kv_dim]
  float* d_att = nullptr;        // [rows, q_dim]
  float* d_gate = nullptr;       // [rows, hidden]
  float* d_up = nullptr;         // [rows, hidden]
  float* d_act = nullptr;        // [rows, hidden]
  std::vector<float> storage;
};

// Sizes and carves the workspace; ResourceExhausted when it cannot be had.
Status plan_workspace(const TrainShape& shape, const LocalDims& local, int64_t max_batch, Workspace* ws);

class TrainModelImpl final : public TrainModel {
 public:
  TrainModelImpl(const TrainShape& shape, TensorParallelRank tp, TrainComm* comm, ThreadPool* pool,
                 int64_t max_batch);
  Status allocate();

  const TrainShape& shape() const override { return shape_; }
  TensorParallelRank tensor_parallel() const override { return tp_; }
  const std::vector<ParamTensor>& tensors() const override { return tensors_; }
  std::span<float> params() override { return params_; }
  std::span<float> grads() override { return grads_; }
  size_t workspace_bytes() const override { return ws_.storage.size() * sizeof(float); }
  void init(uint64_t seed) override;
  void zero_grads() override;
  Result<double> forward_backward(std::span<const int> inputs, std::span<const int> targets, int64_t batch,
                                  float grad_scale, const GradsFinalFn& on_grads_final) override;
  Result<double> loss(std::span<const int> inputs, std::span<const int> targets, int64_t batch) override;
  Status gather_full(std::vector<float>* full) override;

 private:
  Status check_batch(std::span<const int> inputs, std::span<const int> targets, int64_t batch) const;
  // The forward through the logits, saving what the backward needs.
  Status forward(std::span<const int> inputs, int64_t batch);
  // The mean cross-entropy of the logits; with dlogits_scale set, also
  // ws_.dlogits = (softmax - onehot) * dlogits_scale.
  Result<double> cross_entropy_loss(std::span<const int> targets, int64_t rows, const float* dlogits_scale);
  Status backward(std::span<const int> inputs, int64_t batch, const GradsFinalFn& on_grads_final);
  // Sums x over the tensor-parallel group (nothing to do at tp=1).
  Status tp_sum(float* x, int64_t n);

  const float* param(int64_t tensor) const { return params_.data() + tensors_[tensor].offset; }
  float* grad(int64_t tensor) { return grads_.data() + tensors_[tensor].offset; }
  const float* layer_param(int64_t l, LayerTensor t) const { return param(layer_tensor_index(l, t)); }
  float* layer_grad(int64_t l, LayerTensor t) { return grad(layer_tensor_index(l, t)); }

  TrainShape shape_;
  TensorParallelRank tp_;
  TrainComm* comm_ = nullptr;  // null at tp=1
  ThreadPool* pool_ = nullptr;
  int64_t max_batch_ = 0;
  LocalDims local_;
  std::vector<ParamTensor> tensors_;
  std::vector<float> params_;
  std::vector<float> grads_;
  Workspace ws_;
};

}  // namespace tandem::train::detail
