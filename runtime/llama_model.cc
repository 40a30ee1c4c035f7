#include "runtime/llama_model.h"

#include <algorithm>
#include <atomic>

namespace tandem {
namespace {

// Rows [0, n) of a planned [max_batch, width] activation.
Tensor first_rows(const Tensor& t, int64_t n) { return t.row_slice(0, n); }

// Decode-step keys unique over the process's models (64 per model).
std::atomic<uint64_t> next_step_key{64};

}  // namespace

LlamaModel::LlamaModel(Backend& backend, LlamaWeights weights)
    : backend_(backend), weights_(std::move(weights)), step_key_(next_step_key.fetch_add(64)) {}

LlamaModel::~LlamaModel() {
  for (uint64_t i = 0; i < 64; ++i)
    if (used_step_keys_ & (uint64_t{1} << i)) backend_.forget_decode_step(step_key_ + i);
}

Result<std::unique_ptr<LlamaModel>> LlamaModel::create(Backend& backend, LlamaWeights weights,
                                                       const LlamaModelOptions& options) {
  TANDEM_RETURN_IF_ERROR(validate(weights.config, "model"));
  std::unique_ptr<LlamaModel> model(new LlamaModel(backend, std::move(weights)));
  LlamaWeights& w = model->weights_;
  auto import = [&](Tensor& t) -> Status {
    TANDEM_ASSIGN_OR_RETURN(t, backend.import_weights(t));
    return Status::Ok();
  };
  const bool shared = w.classifier.data == w.embedding.data;
  TANDEM_RETURN_IF_ERROR(import(w.embedding));
  for (auto& l : w.layers) {
    for (Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_down,
                      &l.w_up})
      TANDEM_RETURN_IF_ERROR(import(*t));
  }
  TANDEM_RETURN_IF_ERROR(import(w.final_norm));
  if (shared) {
    w.classifier = w.embedding;
  } else {
    TANDEM_RETURN_IF_ERROR(import(w.classifier));
  }
  TANDEM_RETURN_IF_ERROR(model->plan_memory(options));
  return model;
}

Status LlamaModel::plan_memory(const LlamaModelOptions& options) {
  const LlamaConfig& c = weights_.config;
  context_ = options.context == 0 ? c.max_seq_len : options.context;
  if (context_ < 1 || context_ > c.max_seq_len)
    return InvalidArgument("context " + std::to_string(context_) + " is outside [1, " +
                           std::to_string(c.max_seq_len) + "], the model's trained context");
  if (options.max_batch < 1) return InvalidArgument("max_batch must be at least 1");
  max_batch_ = std::min(options.max_batch, context_);

  const int64_t q_dim = c.n_heads * c.head_dim();
  const int64_t widths[] = {c.dim, c.dim, q_dim, c.kv_dim(), c.kv_dim(), q_dim, c.hidden_dim,
                            c.hidden_dim};
  int64_t floats = c.vocab_size;  // logits of one token
  for (int64_t wdt : widths) floats += max_batch_ * wdt;
  TANDEM_ASSIGN_OR_RETURN(activations_, backend_.allocate(floats * sizeof(float)));
  TANDEM_ASSIGN_OR_RETURN(kv_cache_, backend_.allocate(static_cast<size_t>(2) * c.n_layers *
                                                       context_ * c.kv_dim() * sizeof(float)));

  float* cursor = static_cast<float*>(activations_.data());
  Tensor* targets[] = {&x_, &xb_, &q_, &k_, &v_, &att_, &gate_, &up_};
  for (size_t i = 0; i < std::size(targets); ++i) {
    *targets[i] = Tensor::view(cursor, DType::kF32, {max_batch_, widths[i]});
    cursor += max_batch_ * widths[i];
  }
  logits_ = Tensor::view(cursor, DType::kF32, {1, c.vocab_size});

  TANDEM_ASSIGN_OR_RETURN(argmax_buffer_, backend_.allocate(sizeof(int32_t)));
  argmax_ = Tensor::view(argmax_buffer_.data(), DType::kI32, {1});

  float* kv = static_cast<float*>(kv_cache_.data());
  const int64_t per_layer = context_ * c.kv_dim();
  for (int64_t l = 0; l < c.n_layers; ++l) {
    k_cache_.push_back(Tensor::view(kv + (2 * l) * per_layer, DType::kF32, {context_, c.kv_dim()}));
    v_cache_.push_back(Tensor::view(kv + (2 * l + 1) * per_layer, DType::kF32, {context_, c.kv_dim()}));
  }
  return Status::Ok();
}

Status LlamaModel::check_input(std::span<const int> tokens, int64_t start_pos) const {
  const LlamaConfig& c = weights_.config;
  if (tokens.empty()) return InvalidArgument("forward: no tokens");
  if (start_pos < 0 || start_pos + static_cast<int64_t>(tokens.size()) > context_)
    return OutOfRange("forward: positions [" + std::to_string(start_pos) + ", " +
                      std::to_string(start_pos + tokens.size()) + ") exceed the context of " +
                      std::to_string(context_));
  for (int t : tokens)
    if (t < 0 || t >= c.vocab_size)
      return InvalidArgument("forward: token id " + std::to_string(t) + " is outside [0, " +
                             std::to_string(c.vocab_size) + ")");
  return Status::Ok();
}

Status LlamaModel::run(std::span<const int> tokens, int64_t start_pos, bool with_argmax) {
  const size_t n = tokens.size();
  if (n <= Backend::kDecodeStepMaxTokens && static_cast<int64_t>(n) <= max_batch_) {
    const uint64_t index = (n << 1) | (with_argmax ? 1 : 0);
    used_step_keys_ |= uint64_t{1} << index;
    return backend_.decode_step(step_key_ + index, tokens, start_pos, [&] {
      forward_chunk(tokens, start_pos);
      if (with_argmax) backend_.argmax(argmax_, logits_);
    });
  }
  for (size_t done = 0; done < n;) {
    const size_t count = std::min<size_t>(n - done, max_batch_);
    forward_chunk(tokens.subspan(done, count), start_pos + static_cast<int64_t>(done));
    done += count;
  }
  if (with_argmax) backend_.argmax(argmax_, logits_);
  return Status::Ok();
}

Status LlamaModel::forward(std::span<const int> tokens, int64_t start_pos, std::span<float> logits) {
  const LlamaConfig& c = weights_.config;
  if (logits.size() != static_cast<size_t>(c.vocab_size))
    return InvalidArgument("forward: logits hold " + std::to_string(logits.size()) +
                           " floats, the vocabulary has " + std::to_string(c.vocab_size));
  TANDEM_RETURN_IF_ERROR(check_input(tokens, start_pos));
  TANDEM_RETURN_IF_ERROR(run(tokens, start_pos, false));
  return backend_.copy_to_host(logits.data(), logits_, logits.size() * sizeof(float));
}

Result<int> LlamaModel::forward_argmax(std::span<const int> tokens, int64_t start_pos) {
  TANDEM_RETURN_IF_ERROR(check_input(tokens, start_pos));
  TANDEM_RETURN_IF_ERROR(run(tokens, start_pos, true));
  int32_t token = 0;
  TANDEM_RETURN_IF_ERROR(backend_.copy_to_host(&token, argmax_, sizeof(token)));
  return static_cast<int>(token);
}

void LlamaModel::forward_chunk(std::span<const int> tokens, int64_t start_pos) {
  const LlamaConfig& c = weights_.config;
  Backend& b = backend_;
  const int64_t n = static_cast<int64_t>(tokens.size());
  const Tensor x = first_rows(x_, n), xb = first_rows(xb_, n), q = first_rows(q_, n),
               k = first_rows(k_, n), v = first_rows(v_, n), att = first_rows(att_, n),
               gate = first_rows(gate_, n), up = first_rows(up_, n);
  const AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim(), start_pos,
                             weights_.layers[0].wq.dtype != DType::kF32};

  b.embed(x, weights_.embedding, tokens);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LlamaLayerWeights& w = weights_.layers[l];
    b.rmsnorm(xb, x, w.attn_norm, c.norm_eps);
    const MatmulTarget qkv[] = {{q, w.wq}, {k, w.wk}, {v, w.wv}};
    b.matmul_shared_input(xb, qkv);
    b.rope(q, k, shape, c.rope_theta);
    b.store_kv(k_cache_[l], v_cache_[l], k, v, start_pos);
    b.attention(att, q, k_cache_[l], v_cache_[l], shape);
    b.matmul(xb, att, w.wo);
    b.add(x, xb);

    b.rmsnorm(xb, x, w.ffn_norm, c.norm_eps);
    const MatmulTarget gate_up[] = {{gate, w.w_gate}, {up, w.w_up}};
    b.matmul_shared_input(xb, gate_up);
    b.swiglu(gate, gate, up);
    b.matmul(xb, gate, w.w_down);
    b.add(x, xb);
  }
  // Only the last token's logits are needed to pick the next token.
  const Tensor last = x.row_slice(n - 1, 1), last_normed = xb.row_slice(n - 1, 1);
  b.rmsnorm(last_normed, last, weights_.final_norm, c.norm_eps);
  b.matmul(logits_, last_normed, weights_.classifier);
}

uint64_t LlamaModel::weight_bytes_per_token() const {
  uint64_t bytes = weights_.classifier.bytes() + weights_.final_norm.bytes() +
                   weights_.embedding.row_slice(0, 1).bytes();
  for (const auto& l : weights_.layers)
    for (const Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate,
                            &l.w_down, &l.w_up})
      bytes += t->bytes();
  return bytes;
}

uint64_t LlamaModel::kv_bytes_per_position() const {
  const LlamaConfig& c = weights_.config;
  return static_cast<uint64_t>(2) * c.n_layers * c.kv_dim() * sizeof(float);
}

}  // namespace tandem
