// The model shapes the sharding tests plan and slice: the bundled model's,
// a grouped-query shape with uneven MLP and vocab, and Llama 3.1 405B's.
#pragma once

#include "runtime/llama_weights.h"

namespace tandem::sharding::test_shapes {

inline LlamaConfig stories260k() {
  LlamaConfig c;
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_layers = 5;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.vocab_size = 512;
  c.max_seq_len = 512;
  return c;
}

// 8 query heads sharing 2 KV heads (groups of 4), an uneven hidden and vocab.
inline LlamaConfig gqa_8_2(bool shared_classifier = false) {
  LlamaConfig c;
  c.dim = 128;
  c.hidden_dim = 250;
  c.n_layers = 4;
  c.n_heads = 8;
  c.n_kv_heads = 2;
  c.vocab_size = 1001;
  c.max_seq_len = 32;
  c.shared_classifier = shared_classifier;
  return c;
}

inline LlamaConfig llama31_405b() {
  LlamaConfig c;
  c.dim = 16384;
  c.hidden_dim = 53248;
  c.n_layers = 126;
  c.n_heads = 128;
  c.n_kv_heads = 8;
  c.vocab_size = 128256;
  c.max_seq_len = 131072;
  c.shared_classifier = false;
  return c;
}

}  // namespace tandem::sharding::test_shapes
