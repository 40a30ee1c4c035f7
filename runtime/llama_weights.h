// The Llama family's shape and weights, independent of the file format they
// came from. Weight matrices are row-major [out, in] as checkpoints store them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/status.h"
#include "runtime/tensor.h"

namespace tandem {

// Llama 3.1's "llama3" RoPE frequency scaling (Meta's apply_scaling): each
// rotary frequency is divided by 1 where its wavelength is shorter than
// original_context / high_freq_factor, by `factor` where it is longer than
// original_context / low_freq_factor, and by a smooth blend between.
// factor 0 = no scaling.
struct RopeScaling {
  float factor = 0.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_context = 8192;
};

// The positions a model's KV cache is planned for when none is asked for:
// its trained context, at most this. A header's context is a model's claim,
// not a need: 131072 trained positions of an 8B model are a 34 GB f32 cache.
inline constexpr int64_t kDefaultContext = 8192;

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
  // Width of one attention head; 0 = dim / n_heads (llama2.c, Llama, Mistral).
  // Qwen3 sets it: 16 heads of 128 over a width of 1024.
  int64_t explicit_head_dim = 0;
  bool attention_bias = false;  // q, k and v projections add bq, bk, bv (Qwen2)
  bool qk_norm = false;         // q and k heads RMS-normalised before RoPE (Qwen3)
  RopeScaling rope_scaling;
  // Mistral 7B v0.1 attends to the last `sliding_window` positions only; 0 =
  // every position. The model's attention sees every position, which is the
  // same computation only within the window: LlamaModel refuses a longer
  // context (see LlamaModel::create).
  int64_t sliding_window = 0;

  int64_t head_dim() const { return explicit_head_dim != 0 ? explicit_head_dim : dim / n_heads; }
  int64_t q_dim() const { return n_heads * head_dim(); }
  int64_t kv_dim() const { return n_kv_heads * head_dim(); }
  // Parameters, counting a shared classifier once.
  int64_t parameter_count() const;
};

// The most positions a model runs: its trained context, or its sliding
// window when that is shorter (tandem's attention sees every position, which
// is the windowed model's computation only within the window).
inline int64_t context_limit(const LlamaConfig& c) {
  return c.sliding_window > 0 && c.sliding_window < c.max_seq_len ? c.sliding_window : c.max_seq_len;
}

// The positions planned when none are asked for: context_limit, at most
// kDefaultContext. Every planner and loader asks this one function.
inline int64_t default_context(const LlamaConfig& c) { return std::min(context_limit(c), kDefaultContext); }

// InvalidArgument unless 1 <= context <= context_limit(c), naming which
// limit binds (the trained context, or the sliding window).
Status check_context(const LlamaConfig& c, int64_t context);

// Limits that keep every size computation far from overflow and refuse absurd
// headers before anything is allocated.
inline constexpr int64_t kMaxModelDim = 1 << 17;
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxHeads = 4096;
inline constexpr int64_t kMaxHeadDim = 1024;
inline constexpr int64_t kMaxVocab = 1 << 22;
inline constexpr int64_t kMaxSeqLen = 1 << 22;

// Checks ranges and divisibility; errors start with `source` (a path).
Status validate(const LlamaConfig& config, std::string_view source);

struct LlamaLayerWeights {
  Tensor attn_norm;  // [dim]
  Tensor wq;         // [n_heads * head_dim, dim]
  Tensor wk;         // [kv_dim, dim]
  Tensor wv;         // [kv_dim, dim]
  // With config.attention_bias, f32 (unset otherwise): added to q, k, v.
  Tensor bq;         // [n_heads * head_dim]
  Tensor bk;         // [kv_dim]
  Tensor bv;         // [kv_dim]
  // With config.qk_norm, f32 (unset otherwise): RMSNorm weights of every
  // query / key head, applied after the biases and before RoPE.
  Tensor q_norm;     // [head_dim]
  Tensor k_norm;     // [head_dim]
  Tensor wo;         // [dim, n_heads * head_dim]
  Tensor ffn_norm;   // [dim]
  Tensor w_gate;     // [hidden, dim]   (llama2.c w1)
  Tensor w_down;     // [dim, hidden]   (llama2.c w2)
  Tensor w_up;       // [hidden, dim]   (llama2.c w3)
};

// Which part of the model a LlamaWeights holds when the model is split over
// ranks (sharding/shard_plan.h plans it, sharding/shard_loader.h loads it).
// The tensors then have the local shapes: wq [n_heads * head_dim, dim] (bq
// its rows' entries), wk and wv [n_kv_heads * head_dim, dim] (bk, bv alike), wo [dim, n_heads * head_dim], w_gate and
// w_up [hidden_dim, dim], w_down [dim, hidden_dim], the embedding and the
// classifier [vocab_end - vocab_begin, dim]. A default-constructed shard (all
// counts 0) means the whole model; LlamaModel::create fills it in.
// Part `i` of `n` items split `parts` ways as [begin, end), the first
// n % parts parts one item larger: how sharding/shard_plan.h splits layers,
// MLP units and vocabulary rows, and how LlamaModel checks and reassembles a
// vocab-parallel shard's rows.
inline std::pair<int64_t, int64_t> even_split(int64_t n, int64_t parts, int64_t i) {
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = i * base + (i < extra ? i : extra);
  return {begin, begin + base + (i < extra ? 1 : 0)};
}

struct LlamaShard {
  int tp = 1;
  int tp_rank = 0;
  int pp = 1;
  int stage = 0;
  int64_t first_layer = 0;  // layers[i] is the model's layer first_layer + i
  int64_t n_heads = 0;      // query heads held
  int64_t n_kv_heads = 0;   // KV heads held (a replicated head counts once)
  int64_t hidden_dim = 0;   // MLP columns held
  int64_t vocab_begin = 0;  // embedding / classifier rows held: [vocab_begin, vocab_end)
  int64_t vocab_end = 0;
  bool has_embedding = true;   // the first stage embeds
  bool has_classifier = true;  // the last stage normalises and classifies

  bool whole() const { return tp == 1 && pp == 1; }
  bool first_stage() const { return stage == 0; }
  bool last_stage() const { return stage == pp - 1; }
};

struct LlamaWeights {
  LlamaConfig config;  // the whole model's shape
  LlamaShard shard;    // the part of it held here
  Tensor embedding;   // [vocab, dim]; unset (null data) without has_embedding
  std::vector<LlamaLayerWeights> layers;  // the shard's layers
  Tensor final_norm;  // [dim]; unset without has_classifier
  Tensor classifier;  // [vocab, dim]; the embedding when shared (same data)
  // Keeps the memory the tensors view alive (a mapped file, or owned memory).
  std::shared_ptr<const void> storage;
};

}  // namespace tandem
