#include "runtime/synthetic.h"

#include <cmath>
#include <new>
#include <vector>

#include "runtime/hash.h"
#include "runtime/quantize.h"

namespace tandem {
namespace {

// splitmix64: tiny, fast, and its output is fixed by its definition.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    const uint64_t x = state;
    state += 0x9E3779B97F4A7C15ull;
    return splitmix64(x);
  }
  float uniform_pm1() { return static_cast<float>(next() >> 40) * (2.0f / 16777216.0f) - 1.0f; }
};

LlamaConfig shape(int64_t dim, int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                  int64_t vocab, int64_t seq) {
  LlamaConfig c;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.vocab_size = vocab;
  c.max_seq_len = seq;
  return c;
}

}  // namespace

std::optional<LlamaConfig> synthetic_shape(std::string_view name) {
  if (name == "stories260K") return shape(64, 172, 5, 8, 4, 512, 512);
  if (name == "stories15M") return shape(288, 768, 6, 6, 6, 32000, 256);
  if (name == "stories110M") return shape(768, 2048, 12, 12, 12, 32000, 1024);
  if (name == "tiny-gqa") return shape(64, 96, 4, 8, 2, 512, 256);
  if (name == "llama-1b") {
    LlamaConfig c = shape(2048, 8192, 16, 32, 8, 32000, 2048);
    c.shared_classifier = false;
    return c;
  }
  if (name == "llama3-8b") {
    LlamaConfig c = shape(4096, 14336, 32, 32, 8, 128256, 2048);
    c.shared_classifier = false;
    c.rope_theta = 500000.0f;
    return c;
  }
  if (name == "llama3-405b-2layer") {
    // Llama 3.1 405B's widths with two of its 126 layers: big enough that a
    // tp=2 split has to hold, small enough (6 GB in Q4_0) for one host.
    LlamaConfig c = shape(16384, 53248, 2, 128, 8, 128256, 1024);
    c.shared_classifier = false;
    c.rope_theta = 500000.0f;
    return c;
  }
  return std::nullopt;
}

std::string_view synthetic_shape_names() {
  return "stories260K, stories15M, stories110M, tiny-gqa, llama-1b, llama3-8b, llama3-405b-2layer";
}

Result<LlamaWeights> make_synthetic_weights(const LlamaConfig& c, uint64_t seed) {
  TANDEM_RETURN_IF_ERROR(validate(c, "synthetic model"));
  const int64_t total = c.parameter_count();
  float* data = new (std::nothrow) float[total];
  if (data == nullptr)
    return ResourceExhausted("synthetic model: cannot allocate " +
                             std::to_string(total * sizeof(float)) + " bytes");
  LlamaWeights w;
  w.config = c;
  w.storage = std::shared_ptr<const void>(data, [](const void* p) { delete[] static_cast<const float*>(p); });

  SplitMix64 rng{seed};
  float* cursor = data;
  auto matrix = [&](int64_t rows, int64_t cols) {
    Tensor t = Tensor::view(cursor, DType::kF32, {rows, cols});
    const float scale = 1.0f / std::sqrt(static_cast<float>(cols));
    for (int64_t i = 0; i < rows * cols; ++i) cursor[i] = scale * rng.uniform_pm1();
    cursor += rows * cols;
    return t;
  };
  auto norm = [&](int64_t n) {
    Tensor t = Tensor::view(cursor, DType::kF32, {n});
    for (int64_t i = 0; i < n; ++i) cursor[i] = 1.0f + 0.1f * rng.uniform_pm1();
    cursor += n;
    return t;
  };
  const int64_t q_dim = c.n_heads * c.head_dim();
  w.embedding = matrix(c.vocab_size, c.dim);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LlamaLayerWeights layer;
    layer.attn_norm = norm(c.dim);
    layer.wq = matrix(q_dim, c.dim);
    layer.wk = matrix(c.kv_dim(), c.dim);
    layer.wv = matrix(c.kv_dim(), c.dim);
    layer.wo = matrix(c.dim, q_dim);
    layer.ffn_norm = norm(c.dim);
    layer.w_gate = matrix(c.hidden_dim, c.dim);
    layer.w_down = matrix(c.dim, c.hidden_dim);
    layer.w_up = matrix(c.hidden_dim, c.dim);
    w.layers.push_back(layer);
  }
  w.final_norm = norm(c.dim);
  w.classifier = c.shared_classifier ? w.embedding : matrix(c.vocab_size, c.dim);
  TANDEM_CHECK(cursor == data + total);
  return w;
}

Result<LlamaWeights> make_synthetic_weights_on(Backend& backend, const LlamaConfig& c, uint64_t seed,
                                               DType dtype) {
  TANDEM_RETURN_IF_ERROR(validate(c, "synthetic model"));
  const int64_t q_dim = c.n_heads * c.head_dim();
  for (int64_t width : {c.dim, q_dim, c.hidden_dim})
    if (!storable_as(dtype, width))
      return InvalidArgument("synthetic model: rows of " + std::to_string(width) + " cannot be stored as " +
                             std::string(dtype_name(dtype)));
  // Lay every tensor out in one allocation (256-byte aligned starts), then fill.
  struct Fill {
    Tensor* t;
    float scale, offset;
  };
  LlamaWeights w;
  w.config = c;
  w.layers.resize(c.n_layers);
  std::vector<Fill> fills;
  size_t bytes = 0;
  auto matrix = [&](Tensor& t, int64_t rows, int64_t cols) {
    t = Tensor::view(reinterpret_cast<void*>(bytes), dtype, {rows, cols});
    fills.push_back({&t, 1.0f / std::sqrt(static_cast<float>(cols)), 0.0f});
    bytes += (t.bytes() + 255) / 256 * 256;
  };
  auto norm = [&](Tensor& t, int64_t n) {
    t = Tensor::view(reinterpret_cast<void*>(bytes), DType::kF32, {n});
    fills.push_back({&t, 0.1f, 1.0f});
    bytes += (t.bytes() + 255) / 256 * 256;
  };
  matrix(w.embedding, c.vocab_size, c.dim);
  for (auto& l : w.layers) {
    norm(l.attn_norm, c.dim);
    matrix(l.wq, q_dim, c.dim);
    matrix(l.wk, c.kv_dim(), c.dim);
    matrix(l.wv, c.kv_dim(), c.dim);
    matrix(l.wo, c.dim, q_dim);
    norm(l.ffn_norm, c.dim);
    matrix(l.w_gate, c.hidden_dim, c.dim);
    matrix(l.w_down, c.dim, c.hidden_dim);
    matrix(l.w_up, c.hidden_dim, c.dim);
  }
  norm(w.final_norm, c.dim);
  if (!c.shared_classifier) matrix(w.classifier, c.vocab_size, c.dim);
  TANDEM_ASSIGN_OR_RETURN(Buffer buffer, backend.allocate(bytes));
  SplitMix64 seeds{seed};
  for (const Fill& f : fills) {
    f.t->data = static_cast<char*>(buffer.data()) + reinterpret_cast<size_t>(f.t->data);
    TANDEM_RETURN_IF_ERROR(backend.fill_synthetic(*f.t, seeds.next(), f.scale, f.offset));
  }
  if (c.shared_classifier) w.classifier = w.embedding;
  auto owner = std::make_shared<Buffer>(std::move(buffer));
  w.storage = std::shared_ptr<const void>(owner, owner->data());
  return w;
}

}  // namespace tandem
