// An independent float64 Llama forward for tests: its own llama2.c parser,
// one token at a time, as llama2.c's run.c computes it, sharing no code with
// the runtime beyond the weights it is handed.
#pragma once

#include <string>
#include <vector>

#include "runtime/llama_weights.h"

namespace tandem::testing {

struct ReferenceWeights {
  int dim = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, seq = 0;
  int head_dim = 0;  // 0: dim / heads
  double theta = 10000.0, eps = 1e-5;
  // RoPE pairs: (2j, 2j+1) as llama2.c, or (j, j + head_dim/2) as Hugging
  // Face and GGUF's qwen2/qwen3 store Q and K rows.
  bool rotate_half = false;
  // Llama 3.1's frequency scaling, as Meta's apply_scaling states it; factor 0: none.
  double scale_factor = 0, low_freq_factor = 1, high_freq_factor = 4, original_context = 8192;
  // Per layer, as in a checkpoint: wq [heads * head_dim, dim], wo [dim, heads * head_dim].
  std::vector<double> emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls;
  // Optional, per layer (empty: none): biases of q, k, v; q/k head norms [head_dim].
  std::vector<double> bq, bk, bv, q_norm, k_norm;
};

// Parses llama2.c checkpoint bytes (throws on a malformed file).
ReferenceWeights parse_llama2c_reference(const std::string& bytes);
// Copies runtime weights (host f32) into the reference's layout.
ReferenceWeights reference_from(const LlamaWeights& w);

class ReferenceLlama {
 public:
  explicit ReferenceLlama(const ReferenceWeights& w);
  // Logits of `token` at `pos`; positions must be fed in order from 0.
  std::vector<double> forward(int token, int pos);

 private:
  const ReferenceWeights& w_;
  std::vector<double> k_cache_, v_cache_;
};

}  // namespace tandem::testing
