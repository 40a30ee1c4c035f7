// A Llama-family decoder on a Backend: embedding, per layer RMSNorm ->
// grouped-query attention with RoPE over a KV cache -> residual, RMSNorm ->
// SwiGLU MLP -> residual, then the final norm and the classifier.
//
// All memory is planned at creation: one buffer of activations for up to
// `max_batch` tokens per forward and one KV cache for `context` positions.
// forward() allocates nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "runtime/backend.h"
#include "runtime/llama_weights.h"

namespace tandem {

struct LlamaModelOptions {
  int64_t context = 0;     // positions of KV cache; 0 = the model's max_seq_len
  int64_t max_batch = 64;  // tokens per forward chunk (prefill); longer inputs are chunked
};

class LlamaModel {
 public:
  // Imports the weights into `backend` (which must outlive the model).
  static Result<std::unique_ptr<LlamaModel>> create(Backend& backend, LlamaWeights weights,
                                                    const LlamaModelOptions& options);
  ~LlamaModel();
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  const LlamaConfig& config() const { return weights_.config; }
  int64_t context() const { return context_; }
  Backend& backend() const { return backend_; }

  // Runs `tokens` at positions [start_pos, start_pos + tokens.size()),
  // appending their keys and values to the cache (positions after them are
  // forgotten), and writes the last token's logits (vocab_size floats).
  // InvalidArgument for an empty input, a token id outside the vocabulary or
  // a wrong logits size; OutOfRange past the context.
  Status forward(std::span<const int> tokens, int64_t start_pos, std::span<float> logits);
  // forward(), then the greedy choice taken on the backend: only the token id
  // comes back to the host.
  Result<int> forward_argmax(std::span<const int> tokens, int64_t start_pos);

  // Bytes of weights a decode step reads (every matrix once, plus the norms
  // and the token's embedding row) and of KV cache per position.
  uint64_t weight_bytes_per_token() const;
  uint64_t kv_bytes_per_position() const;
  // Memory this model allocated from the backend (activations + KV cache).
  uint64_t allocated_bytes() const {
    return activations_.bytes() + kv_cache_.bytes() + argmax_buffer_.bytes();
  }

 private:
  LlamaModel(Backend& backend, LlamaWeights weights);
  Status plan_memory(const LlamaModelOptions& options);
  Status check_input(std::span<const int> tokens, int64_t start_pos) const;
  // Runs the tokens (chunked by max_batch); a short input goes through
  // Backend::decode_step, with the argmax of its last logits when asked.
  Status run(std::span<const int> tokens, int64_t start_pos, bool with_argmax);
  void forward_chunk(std::span<const int> tokens, int64_t start_pos);

  Backend& backend_;
  LlamaWeights weights_;  // views in backend memory after create()
  int64_t context_ = 0;
  int64_t max_batch_ = 0;
  Buffer activations_;
  Buffer kv_cache_;
  Buffer argmax_buffer_;
  Tensor argmax_;  // [1] i32
  uint64_t step_key_ = 0;       // this model's decode_step keys: step_key_ + (tokens << 1 | argmax)
  uint64_t used_step_keys_ = 0;  // bit i: step_key_ + i was used
  // Full-size views into activations_ ([max_batch, width]); sliced per chunk.
  Tensor x_, xb_, q_, k_, v_, att_, gate_, up_, logits_;
  std::vector<Tensor> k_cache_, v_cache_;  // per layer [context, kv_dim]
};

}  // namespace tandem
