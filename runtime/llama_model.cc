#include "runtime/llama_model.h"

#include <algorithm>
#include <atomic>
#include <chrono>

#include "runtime/rope_frequencies.h"

namespace tandem {
namespace {

// Rows [first, first + n) of a planned [max_batch, width] activation.
Tensor rows(const Tensor& t, int64_t first, int64_t n) { return t.row_slice(first, n); }

// Decode-step keys unique over the process's models (64 per model).
std::atomic<uint64_t> next_step_key{64};

}  // namespace

LlamaModel::LlamaModel(Backend& backend, LlamaWeights weights, ModelComm* comm)
    : backend_(backend),
      weights_(std::move(weights)),
      comm_(comm),
      rope_inv_freq_(rope_inv_frequencies(weights_.config)),
      step_key_(next_step_key.fetch_add(64)) {}

LlamaModel::~LlamaModel() {
  for (uint64_t i = 0; i < 64; ++i)
    if (used_step_keys_ & (uint64_t{1} << i)) backend_.forget_decode_step(step_key_ + i);
}

Result<std::unique_ptr<LlamaModel>> LlamaModel::create(Backend& backend, LlamaWeights weights,
                                                       const LlamaModelOptions& options,
                                                       ModelComm* comm) {
  TANDEM_RETURN_IF_ERROR(validate(weights.config, "model"));
  LlamaShard& s = weights.shard;
  if (s.n_heads == 0) {  // the whole model
    const LlamaConfig& c = weights.config;
    s = LlamaShard{};
    s.n_heads = c.n_heads;
    s.n_kv_heads = c.n_kv_heads;
    s.hidden_dim = c.hidden_dim;
    s.vocab_end = c.vocab_size;
  }
  if (s.whole()) comm = nullptr;
  else if (comm == nullptr) return InvalidArgument("a sharded model needs a ModelComm to meet its peers");
  std::unique_ptr<LlamaModel> model(new LlamaModel(backend, std::move(weights), comm));
  TANDEM_RETURN_IF_ERROR(model->check_shard());
  LlamaWeights& w = model->weights_;
  auto import = [&](Tensor& t) -> Status {
    TANDEM_ASSIGN_OR_RETURN(t, backend.import_weights(t));
    return Status::Ok();
  };
  const bool shared = w.classifier.data == w.embedding.data;
  if (w.shard.has_embedding) TANDEM_RETURN_IF_ERROR(import(w.embedding));
  for (auto& l : w.layers) {
    for (Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_down,
                      &l.w_up})
      TANDEM_RETURN_IF_ERROR(import(*t));
    for (Tensor* t : {&l.bq, &l.bk, &l.bv, &l.q_norm, &l.k_norm})  // present as the config says (check_shard)
      if (t->data != nullptr) TANDEM_RETURN_IF_ERROR(import(*t));
  }
  if (w.shard.has_classifier) {
    TANDEM_RETURN_IF_ERROR(import(w.final_norm));
    if (shared && w.shard.has_embedding) {
      w.classifier = w.embedding;
    } else {
      TANDEM_RETURN_IF_ERROR(import(w.classifier));
    }
  }
  TANDEM_RETURN_IF_ERROR(model->plan_memory(options));
  return model;
}

Status LlamaModel::plan_memory(const LlamaModelOptions& options) {
  const LlamaConfig& c = weights_.config;
  const LlamaShard& s = weights_.shard;
  context_ = options.context == 0 ? default_context(c) : options.context;
  TANDEM_RETURN_IF_ERROR(check_context(c, context_));
  if (options.max_batch < 1) return InvalidArgument("max_batch must be at least 1");
  max_batch_ = std::min(options.max_batch, context_);

  const int64_t q_dim = s.n_heads * c.head_dim(), kv_dim = s.n_kv_heads * c.head_dim();
  const int64_t vocab = s.vocab_end - s.vocab_begin;
  const int64_t widths[] = {c.dim, c.dim, q_dim, kv_dim, kv_dim, q_dim, s.hidden_dim, s.hidden_dim};
  int64_t floats = vocab;  // this shard's logits of one token
  for (int64_t wdt : widths) floats += max_batch_ * wdt;
  TANDEM_ASSIGN_OR_RETURN(activations_, backend_.allocate(floats * sizeof(float)));
  const int64_t layers = static_cast<int64_t>(weights_.layers.size());
  const int64_t cache_rows = options.contiguous_kv ? context_ : 0;
  if (cache_rows > 0) {
    TANDEM_ASSIGN_OR_RETURN(kv_cache_, backend_.allocate(static_cast<size_t>(2) * layers * cache_rows *
                                                         kv_dim * sizeof(float)));
  }

  float* cursor = static_cast<float*>(activations_.data());
  Tensor* targets[] = {&x_, &xb_, &q_, &k_, &v_, &att_, &gate_, &up_};
  for (size_t i = 0; i < std::size(targets); ++i) {
    *targets[i] = Tensor::view(cursor, DType::kF32, {max_batch_, widths[i]});
    cursor += max_batch_ * widths[i];
  }
  logits_ = Tensor::view(cursor, DType::kF32, {1, vocab});

  TANDEM_ASSIGN_OR_RETURN(argmax_buffer_, backend_.allocate(sizeof(int32_t)));
  argmax_ = Tensor::view(argmax_buffer_.data(), DType::kI32, {1});

  float* kv = static_cast<float*>(kv_cache_.data());
  const int64_t per_layer = context_ * kv_dim;
  for (int64_t l = 0; l < layers && cache_rows > 0; ++l) {
    k_cache_.push_back(Tensor::view(kv + (2 * l) * per_layer, DType::kF32, {context_, kv_dim}));
    v_cache_.push_back(Tensor::view(kv + (2 * l + 1) * per_layer, DType::kF32, {context_, kv_dim}));
  }

  // Host-side results, sized once: this shard's logits, the stage's gathered
  // logits (padded per shard) and candidates.
  // A shard's row is padded to the largest shard's (zeros past its rows).
  const int64_t padded = (c.vocab_size + s.tp - 1) / s.tp;
  local_logits_.resize(static_cast<size_t>(std::max(vocab, padded)));
  if (sharded()) gathered_logits_.resize(static_cast<size_t>(std::max(padded * s.tp, c.vocab_size)));
  candidates_.reserve(static_cast<size_t>(kMaxTopK) * s.tp);
  best_one_.reserve(static_cast<size_t>(s.tp));
  return plan_paged(options);
}

Status LlamaModel::check_input(std::span<const int> tokens, int64_t start_pos) const {
  const LlamaConfig& c = weights_.config;
  if (tokens.empty()) return InvalidArgument("forward: no tokens");
  if (k_cache_.empty())
    return FailedPrecondition("forward: the model was created without a contiguous KV cache (forward_batch only)");
  if (start_pos < 0 || start_pos > context_ - static_cast<int64_t>(tokens.size()))  // no overflow
    return OutOfRange("forward: " + std::to_string(tokens.size()) + " positions from " + std::to_string(start_pos) +
                      " exceed the context of " + std::to_string(context_));
  for (int t : tokens)
    if (t < 0 || t >= c.vocab_size)
      return InvalidArgument("forward: token id " + std::to_string(t) + " is outside [0, " +
                             std::to_string(c.vocab_size) + ")");
  return Status::Ok();
}

Status LlamaModel::run(std::span<const int> tokens, int64_t start_pos, bool with_argmax) {
  const size_t n = tokens.size();
  // A sharded step talks to its peers between kernels: host transports cannot
  // be recorded into a backend's decode-step record, exchanges enqueued on
  // the backend's stream can (every rank records and replays the same steps
  // in the same order, as it runs the same forwards).
  const bool recordable = !sharded() || comm_->stream_ordered();
  if (recordable && n <= Backend::kDecodeStepMaxTokens && static_cast<int64_t>(n) <= max_batch_) {
    const uint64_t index = (n << 1) | (with_argmax ? 1 : 0);
    used_step_keys_ |= uint64_t{1} << index;
    Status status;
    TANDEM_RETURN_IF_ERROR(backend_.decode_step(step_key_ + index, tokens, start_pos, [&] {
      status = forward_chunk(tokens, start_pos, /*last_chunk=*/true);
      if (with_argmax) backend_.argmax(argmax_, logits_);
    }));
    return status;
  }
  for (size_t done = 0; done < n;) {
    const size_t count = std::min<size_t>(n - done, max_batch_);
    TANDEM_RETURN_IF_ERROR(forward_chunk(tokens.subspan(done, count),
                                         start_pos + static_cast<int64_t>(done), done + count == n));
    done += count;
  }
  if (with_argmax && !sharded()) backend_.argmax(argmax_, logits_);
  return Status::Ok();
}

Status LlamaModel::forward(std::span<const int> tokens, int64_t start_pos, std::span<float> logits) {
  const LlamaConfig& c = weights_.config;
  if (leader() && logits.size() != static_cast<size_t>(c.vocab_size))
    return InvalidArgument("forward: logits hold " + std::to_string(logits.size()) +
                           " floats, the vocabulary has " + std::to_string(c.vocab_size));
  TANDEM_RETURN_IF_ERROR(check_input(tokens, start_pos));
  TANDEM_RETURN_IF_ERROR(run(tokens, start_pos, false));
  if (sharded()) return timed([&] { return gather_logits(logits); });
  return backend_.copy_to_host(logits.data(), logits_, logits.size() * sizeof(float));
}

Result<int> LlamaModel::forward_argmax(std::span<const int> tokens, int64_t start_pos) {
  TANDEM_RETURN_IF_ERROR(check_input(tokens, start_pos));
  TANDEM_RETURN_IF_ERROR(run(tokens, start_pos, !sharded()));
  if (sharded()) {
    TANDEM_RETURN_IF_ERROR(timed([&] { return gather_top_k(1, best_one_); }));
    return leader() ? static_cast<int>(best_one_.front().id) : 0;
  }
  int32_t token = 0;
  TANDEM_RETURN_IF_ERROR(backend_.copy_to_host(&token, argmax_, sizeof(token)));
  return static_cast<int>(token);
}

Status LlamaModel::forward_top_k(std::span<const int> tokens, int64_t start_pos, int k,
                                 std::vector<TokenLogit>& best) {
  if (k < 1 || k > kMaxTopK)
    return InvalidArgument("forward_top_k: k=" + std::to_string(k) + " is outside [1, " +
                           std::to_string(kMaxTopK) + "]");
  TANDEM_RETURN_IF_ERROR(check_input(tokens, start_pos));
  TANDEM_RETURN_IF_ERROR(run(tokens, start_pos, false));
  if (!sharded()) return gather_top_k(k, best);
  return timed([&] { return gather_top_k(k, best); });
}

Status LlamaModel::tp_all_reduce(const Tensor& x) {
  if (weights_.shard.tp == 1) return Status::Ok();
  return timed([&] { return comm_->all_reduce_sum(x); });
}

Status LlamaModel::project_and_add(const Tensor& x, const Tensor& a, const Tensor& w, const Tensor& scratch) {
  if (weights_.shard.tp == 1) {
    backend_.matmul_add(x, a, w, scratch);
    return Status::Ok();
  }
  // Each rank's product is a partial sum: all-reduced before the residual add.
  backend_.matmul(scratch, a, w);
  TANDEM_RETURN_IF_ERROR(tp_all_reduce(scratch));
  backend_.add(x, scratch);
  return Status::Ok();
}

void LlamaModel::finish_qkv(const LlamaLayerWeights& w, const Tensor& q, const Tensor& k, const Tensor& v) {
  const LlamaConfig& c = weights_.config;
  if (c.attention_bias) {
    backend_.add_bias(q, w.bq);
    backend_.add_bias(k, w.bk);
    backend_.add_bias(v, w.bv);
  }
  if (c.qk_norm) {
    // Every head of every token is a row of head_dim: one rmsnorm each for q and k.
    const int64_t hd = c.head_dim();
    const Tensor q_heads = Tensor::view(q.data, DType::kF32, {q.numel() / hd, hd});
    const Tensor k_heads = Tensor::view(k.data, DType::kF32, {k.numel() / hd, hd});
    backend_.rmsnorm(q_heads, q_heads, w.q_norm, c.norm_eps);
    backend_.rmsnorm(k_heads, k_heads, w.k_norm, c.norm_eps);
  }
}

Status LlamaModel::forward_chunk(std::span<const int> tokens, int64_t start_pos, bool last_chunk,
                                 const PagedRows* paged) {
  const LlamaConfig& c = weights_.config;
  const LlamaShard& s = weights_.shard;
  Backend& b = backend_;
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t r = paged != nullptr ? paged->first_row : 0;
  const Tensor x = rows(x_, r, n), xb = rows(xb_, r, n), q = rows(q_, r, n), k = rows(k_, r, n),
               v = rows(v_, r, n), att = rows(att_, r, n), gate = rows(gate_, r, n), up = rows(up_, r, n);
  const AttentionShape shape{s.n_heads, s.n_kv_heads, c.head_dim(), start_pos,
                             weights_.layers[0].wq.dtype != DType::kF32};

  if (s.first_stage()) {
    // Vocab-parallel: each shard embeds the tokens in its rows (zeros for the
    // others) and the sum is every token's embedding.
    b.embed(x, weights_.embedding, tokens, s.vocab_begin);
    TANDEM_RETURN_IF_ERROR(tp_all_reduce(x));
  } else {
    TANDEM_RETURN_IF_ERROR(timed([&] { return comm_->recv_prev(x); }));
  }
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    const LlamaLayerWeights& w = weights_.layers[l];
    const MatmulTarget qkv[] = {{q, w.wq}, {k, w.wk}, {v, w.wv}};
    b.norm_matmul(xb, x, w.attn_norm, c.norm_eps, qkv);
    finish_qkv(w, q, k, v);
    if (paged != nullptr) {  // many sequences, each token at its own position, paged cache
      b.rope_at(q, k, paged->attention.positions, shape, rope_inv_freq_);
      b.store_kv_paged(k_pool_[l], v_pool_[l], k, v, paged->slots);
      b.paged_attention(att, q, k_pool_[l], v_pool_[l], paged->attention);
    } else {
      b.rope_store_kv(q, k, v, k_cache_[l], v_cache_[l], shape, rope_inv_freq_);
      b.attention(att, q, k_cache_[l], v_cache_[l], shape);
    }
    TANDEM_RETURN_IF_ERROR(project_and_add(x, att, w.wo, xb));  // this shard's heads' share
    b.norm_matmul_swiglu(gate, up, xb, x, w.ffn_norm, c.norm_eps, w.w_gate, w.w_up);
    TANDEM_RETURN_IF_ERROR(project_and_add(x, gate, w.w_down, xb));  // this shard's columns' share
  }
  if (!s.last_stage()) return timed([&] { return comm_->send_next(x); });
  if (!last_chunk) return Status::Ok();
  // Only the last token's logits are needed to pick the next token.
  const Tensor last = x.row_slice(n - 1, 1), last_normed = xb.row_slice(n - 1, 1);
  const MatmulTarget classifier[] = {{logits_, weights_.classifier}};
  b.norm_matmul(last_normed, last, weights_.final_norm, c.norm_eps, classifier);
  return Status::Ok();
}

namespace {
uint64_t held_bytes(const Tensor& t) { return t.data == nullptr ? 0 : t.bytes(); }

uint64_t layer_bytes(const LlamaLayerWeights& l) {
  uint64_t bytes = 0;
  for (const Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_down, &l.w_up,
                          &l.bq, &l.bk, &l.bv, &l.q_norm, &l.k_norm})
    bytes += held_bytes(*t);
  return bytes;
}
}  // namespace

uint64_t LlamaModel::weight_bytes() const {
  uint64_t bytes = held_bytes(weights_.embedding) + held_bytes(weights_.final_norm);
  if (weights_.classifier.data != weights_.embedding.data) bytes += held_bytes(weights_.classifier);
  for (const auto& l : weights_.layers) bytes += layer_bytes(l);
  return bytes;
}

uint64_t LlamaModel::weight_bytes_per_token() const {
  uint64_t bytes = held_bytes(weights_.classifier) + held_bytes(weights_.final_norm);
  if (weights_.embedding.data != nullptr)  // one row is looked up per token
    bytes += static_cast<uint64_t>(held_bytes(weights_.embedding) / weights_.embedding.rows());
  for (const auto& l : weights_.layers) bytes += layer_bytes(l);
  return bytes;
}

uint64_t LlamaModel::kv_bytes_per_position() const {
  const LlamaShard& s = weights_.shard;
  return static_cast<uint64_t>(2) * weights_.layers.size() * s.n_kv_heads *
         weights_.config.head_dim() * sizeof(float);
}

}  // namespace tandem
