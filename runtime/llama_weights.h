// The Llama family's shape and weights, independent of the file format they
// came from. Weight matrices are row-major [out, in] as checkpoints store them.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "runtime/status.h"
#include "runtime/tensor.h"

namespace tandem {

struct LlamaConfig {
  int64_t dim = 0;          // model width
  int64_t hidden_dim = 0;   // MLP width
  int64_t n_layers = 0;
  int64_t n_heads = 0;      // query heads
  int64_t n_kv_heads = 0;   // key/value heads (grouped-query attention when fewer)
  int64_t vocab_size = 0;
  int64_t max_seq_len = 0;  // the context the model was trained for
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  bool shared_classifier = true;  // the classifier is the embedding table

  int64_t head_dim() const { return dim / n_heads; }
  int64_t kv_dim() const { return n_kv_heads * head_dim(); }
  // Parameters, counting a shared classifier once.
  int64_t parameter_count() const;
};

// Limits that keep every size computation far from overflow and refuse absurd
// headers before anything is allocated.
inline constexpr int64_t kMaxModelDim = 1 << 17;
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxHeads = 4096;
inline constexpr int64_t kMaxVocab = 1 << 22;
inline constexpr int64_t kMaxSeqLen = 1 << 22;

// Checks ranges and divisibility; errors start with `source` (a path).
Status validate(const LlamaConfig& config, std::string_view source);

struct LlamaLayerWeights {
  Tensor attn_norm;  // [dim]
  Tensor wq;         // [n_heads * head_dim, dim]
  Tensor wk;         // [kv_dim, dim]
  Tensor wv;         // [kv_dim, dim]
  Tensor wo;         // [dim, n_heads * head_dim]
  Tensor ffn_norm;   // [dim]
  Tensor w_gate;     // [hidden, dim]   (llama2.c w1)
  Tensor w_down;     // [dim, hidden]   (llama2.c w2)
  Tensor w_up;       // [hidden, dim]   (llama2.c w3)
};

struct LlamaWeights {
  LlamaConfig config;
  Tensor embedding;   // [vocab, dim]
  std::vector<LlamaLayerWeights> layers;
  Tensor final_norm;  // [dim]
  Tensor classifier;  // [vocab, dim]; the embedding when shared
  // Keeps the memory the tensors view alive (a mapped file, or owned memory).
  std::shared_ptr<const void> storage;
};

}  // namespace tandem
