// A Llama-family decoder on a Backend: embedding, per layer RMSNorm ->
// grouped-query attention with RoPE over a KV cache -> residual, RMSNorm ->
// SwiGLU MLP -> residual, then the final norm and the classifier.
//
// All memory is planned at creation: one buffer of activations for up to
// `max_batch` tokens per forward and one KV cache for `context` positions.
// forward() allocates nothing.
//
// Sharded (weights.shard not whole; sharding/shard_plan.h): the model holds
// its rank's heads, MLP columns, vocab rows and layers, and every rank of the
// job runs the same forward calls in the same order (launcher/lockstep.h
// sees to that); the ranks meet through a ModelComm: the vocab-parallel
// embedding and the outputs of wo and w_down are all-reduced over the stage's
// tp ranks, stages hand activations on (a prompt in chunks of max_batch, so
// the stages overlap: stage 1 runs chunk i while stage 0 runs chunk i + 1),
// and the last stage's vocab-parallel logits reach rank 0 (the leader), whole
// or as each shard's best candidates. Results are defined on the leader only;
// the other ranks pass empty spans and ignore what comes back.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/backend.h"
#include "runtime/llama_weights.h"
#include "runtime/model_comm.h"
#include "runtime/paged_kv.h"
#include "runtime/sampler.h"

namespace tandem {

struct LlamaModelOptions {
  int64_t context = 0;     // positions of KV cache; 0 = default_context(config)
  int64_t max_batch = 64;  // tokens per forward chunk (prefill); longer inputs are chunked
  // The paged KV pool of forward_batch (runtime/paged_kv.h): kv_blocks > 0
  // plans kv_blocks * kv_block_size positions per layer, shared by every
  // sequence of a batch, and the batch's logits rows. 0: no pool, no forward_batch.
  int64_t kv_blocks = 0;
  int64_t kv_block_size = 16;
  // What the pool stores: f32, or f16 (half the memory and the bytes
  // attention reads; keys and values rounded to nearest even) where the
  // backend supports it (Backend::supports_kv_dtype).
  DType kv_dtype = DType::kF32;
  // The contiguous [context, kv_dim] cache of forward(). A serving engine that
  // runs only forward_batch may drop it (forward() then fails with
  // FailedPrecondition) and give the memory to the pool.
  bool contiguous_kv = true;
};

class LlamaModel {
 public:
  // Imports the weights into `backend` (which must outlive the model). A
  // sharded model needs `comm` (which must outlive it); InvalidArgument names
  // a shard whose tensors or ranges disagree with its config, and
  // Unimplemented a layout the forward does not run yet (tp > 1 with pp > 1:
  // the stage's all-reduces would need a communicator per stage). A model
  // with a sliding attention window (config.sliding_window) gets the window
  // as its default context, and InvalidArgument for a longer one.
  static Result<std::unique_ptr<LlamaModel>> create(Backend& backend, LlamaWeights weights,
                                                    const LlamaModelOptions& options,
                                                    ModelComm* comm = nullptr);
  ~LlamaModel();
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  const LlamaConfig& config() const { return weights_.config; }
  const LlamaShard& shard() const { return weights_.shard; }
  // Rank 0 of the job: it receives the results.
  bool leader() const { return weights_.shard.stage == 0 && weights_.shard.tp_rank == 0; }
  int64_t context() const { return context_; }
  Backend& backend() const { return backend_; }

  // Runs `tokens` at positions [start_pos, start_pos + tokens.size()),
  // appending their keys and values to the cache (positions after them are
  // forgotten), and writes the last token's logits (vocab_size floats).
  // InvalidArgument for an empty input, a token id outside the vocabulary or
  // a wrong logits size; OutOfRange past the context.
  // Sharded: logits on the leader; the other ranks pass an empty span.
  Status forward(std::span<const int> tokens, int64_t start_pos, std::span<float> logits);
  // forward(), then the greedy choice taken on the backend: only the token id
  // comes back to the host (sharded: each shard's best, then the best of those).
  Result<int> forward_argmax(std::span<const int> tokens, int64_t start_pos);
  // forward(), then the min(k, vocab) best tokens by better_candidate()
  // (sampler.h), best first, with their canonical logits: what top-k sampling
  // needs. Sharded, each shard sends only its own k best. k in [1, 4096].
  Status forward_top_k(std::span<const int> tokens, int64_t start_pos, int k,
                       std::vector<TokenLogit>& best);
  static constexpr int kMaxTopK = 4096;

  // Continuous batching (runtime/paged_kv.h, BatchForwardFn): one forward of
  // every sequence's new tokens, keys and values written into the sequences'
  // blocks of the paged pool, and for each sequence with want_logits, in
  // order, its last token's logits: logits is [count(want_logits), vocab].
  // Limits: the step's tokens (summed over sequences) <= max_batch(), hence
  // at most max_batch() sequences. Checked before anything runs (the cache is
  // untouched on error): InvalidArgument for an empty step or sequence, a
  // token outside the vocabulary, a block id outside the pool, a block table
  // too short for the sequence's positions, a wrong logits size, more tokens
  // than max_batch; OutOfRange for positions past the context;
  // FailedPrecondition when the model has no pool (kv_blocks = 0).
  // A sequence's tokens must not share a block with another sequence's
  // written positions in the same step (the scheduler's tables never do).
  // Sharded: every rank makes the same call; logits on the leader only, the
  // others pass an empty span.
  Status forward_batch(std::span<const SequenceStep> sequences, std::span<float> logits);
  // forward_batch(), then each wanted sequence's greedy token (the first of
  // equal maxima), taken where the logits are (unsharded: on the backend), so
  // only the ids come back: tokens is [count(want_logits)] on the leader.
  Status forward_batch_argmax(std::span<const SequenceStep> sequences, std::span<int32_t> tokens);
  // forward_batch's checks alone (launcher/lockstep.h runs them on rank 0
  // before it announces a step); `wanted`, when given, counts want_logits.
  Status check_batch(std::span<const SequenceStep> sequences, int64_t* wanted = nullptr);
  // The leader's result span for a step whose sequences want `wanted` rows:
  // wanted x vocab logits, or wanted token ids (InvalidArgument otherwise).
  Status check_logits_room(int64_t wanted, size_t floats) const;
  Status check_token_room(int64_t wanted, size_t ids) const;
  int64_t max_batch() const { return max_batch_; }
  // The pool's geometry (num_blocks = 0 without one).
  PagedKvConfig paged_kv() const { return paged_; }

  // Bytes of weights a decode step reads (every matrix once, plus the norms
  // and the token's embedding row) and of KV cache per position.
  uint64_t weight_bytes_per_token() const;
  uint64_t kv_bytes_per_position() const;
  // Memory this model allocated from the backend (activations + KV cache).
  uint64_t allocated_bytes() const {
    return activations_.bytes() + kv_cache_.bytes() + argmax_buffer_.bytes() + kv_pool_.bytes() +
           batch_buffer_.bytes();
  }
  // Bytes of the weights this rank holds (its shard; the whole model unsharded).
  uint64_t weight_bytes() const;
  // Seconds this rank has spent in ModelComm calls (sending, receiving and
  // waiting for its peers) since it was created: the communication share of
  // a sharded forward.
  double comm_seconds() const { return comm_seconds_; }

 private:
  LlamaModel(Backend& backend, LlamaWeights weights, ModelComm* comm);
  Status check_shard() const;
  Status plan_memory(const LlamaModelOptions& options);
  Status check_input(std::span<const int> tokens, int64_t start_pos) const;
  // Runs the tokens (chunked by max_batch); a short input goes through
  // Backend::decode_step when unsharded or when the ModelComm is
  // stream_ordered(), with the argmax of its last logits when asked (unsharded).
  Status run(std::span<const int> tokens, int64_t start_pos, bool with_argmax);
  // One chunk through this rank's layers; the last chunk of a forward ends in
  // this shard's logits (last stage).
  // A batched chunk (forward_batch): its rows of the activations and its
  // tokens' positions, sequences and KV slots.
  struct PagedRows {
    int64_t first_row = 0;
    PagedAttention attention;  // positions and token_seq: this chunk's rows
    Tensor slots;
  };
  Status forward_chunk(std::span<const int> tokens, int64_t start_pos, bool last_chunk,
                       const PagedRows* paged = nullptr);
  // The batched forward's parts (llama_model_batch.cc).
  Status plan_paged(const LlamaModelOptions& options);
  Status run_batch(std::span<const SequenceStep> sequences, int64_t wanted);
  Status gather_batch_logits(int64_t wanted, std::span<float> logits);
  Status gather_batch_argmax(int64_t wanted, std::span<int32_t> tokens);
  // The per-token end of the q/k/v projections, before RoPE: the attention
  // biases (Qwen2), then each head's RMSNorm (Qwen3). q, k, v: [tokens,
  // this shard's heads * head_dim], contiguous.
  void finish_qkv(const LlamaLayerWeights& w, const Tensor& q, const Tensor& k, const Tensor& v);
  Status tp_all_reduce(const Tensor& x);
  // x += a @ w^T, the partial products of a tensor-parallel shard summed first.
  Status project_and_add(const Tensor& x, const Tensor& a, const Tensor& w, const Tensor& scratch);
  // Runs one ModelComm call, adding its time to comm_seconds_.
  template <typename Call>
  Status timed(Call&& call);
  // The last stage's shard logits -> host, as each shard's k best / as the
  // whole vocabulary, delivered to the leader (llama_model_results.cc).
  Status local_logits_to_host();
  Status gather_top_k(int k, std::vector<TokenLogit>& best);
  Status gather_logits(std::span<float> logits);
  bool sharded() const { return comm_ != nullptr; }

  Backend& backend_;
  LlamaWeights weights_;  // views in backend memory after create()
  ModelComm* comm_ = nullptr;  // set when sharded
  double comm_seconds_ = 0;
  // Pair j of every head turns by position * rope_inv_freq_[j] (Backend::rope).
  std::vector<double> rope_inv_freq_;
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
  // forward_batch: the pool, per layer [num_blocks * block_size, kv_dim], and
  // the step's metadata and logits in backend memory, staged on the host.
  PagedKvConfig paged_;
  int64_t max_blocks_per_seq_ = 0;
  Buffer kv_pool_, batch_buffer_;
  std::vector<Tensor> k_pool_, v_pool_;
  Tensor batch_meta_;  // i32 [3 * max_batch + max_batch * max_blocks]: positions, slots, seqs, tables
  Tensor batch_logits_, batch_argmax_;  // [max_batch, shard vocab] f32, [max_batch] i32
  std::vector<int32_t> host_meta_;
  std::vector<int> batch_tokens_;  // the step's tokens in row order
  std::vector<float> batch_local_, batch_gathered_;
  std::vector<TokenLogit> batch_best_, batch_best_all_;
  std::vector<int32_t> block_writer_;  // check_batch's scratch: per block, the sequence writing it, or -1
  // Sharded results on the host: this shard's logits, the gathered ones.
  std::vector<float> local_logits_, gathered_logits_;
  std::vector<TokenLogit> candidates_;  // the stage's gathered candidates
  std::vector<TokenLogit> best_one_;    // forward_argmax's
};

// In the header: llama_model.cc and llama_model_batch.cc both time their exchanges.
template <typename Call>
inline Status LlamaModel::timed(Call&& call) {
  const auto start = std::chrono::steady_clock::now();
  Status s = call();
  comm_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

}  // namespace tandem
