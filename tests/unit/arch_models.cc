#include "tests/unit/arch_models.h"

#include <cmath>
#include <deque>
#include <numbers>
#include <random>
#include <vector>

#include "runtime/atomic_file.h"
#include "runtime/formats/gguf_writer.h"
#include "runtime/formats/safetensors_writer.h"
#include "tests/unit/hf_test_util.h"

namespace tandem::testing {
namespace {

int head_dim_of(const ArchSpec& s) { return s.head_dim != 0 ? s.head_dim : s.dim / s.heads; }

std::vector<double> uniform(std::mt19937& rng, size_t n, double center, double half_width) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<double> v(n);
  for (double& x : v) x = static_cast<float>(center + half_width * u(rng));  // exactly a float
  return v;
}

std::vector<float> as_floats(const double* p, size_t n) { return std::vector<float>(p, p + n); }

// The layer-l slice of a per-layer array holding `n` values per layer.
std::vector<float> layer_slice(const std::vector<double>& all, int l, size_t n) {
  return as_floats(all.data() + static_cast<size_t>(l) * n, n);
}

// Rows of a rotate-half [heads * hd, cols] matrix in llama.cpp's interleaved
// order, as its converter permutes llama's Q and K.
std::vector<float> to_interleaved(const std::vector<float>& m, int64_t rows, int64_t cols, int64_t hd) {
  std::vector<float> out(m.size());
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(m.begin() + r * cols, cols, out.begin() + hf_to_interleaved_row(r, hd) * cols);
  return out;
}

// Llama 3's divisor of frequency j, written for the file as llama.cpp does.
float rope_freq_divisor(const ArchSpec& s, int j) {
  const int hd = head_dim_of(s);
  const double freq = 1.0 / std::pow(s.theta, 2.0 * j / hd);
  const RopeScaling& r = s.scaling;
  const double wavelen = 2 * std::numbers::pi / freq, original = static_cast<double>(r.original_context);
  if (wavelen < original / r.high_freq_factor) return 1.0f;
  if (wavelen > original / r.low_freq_factor) return r.factor;
  const double smooth = (original / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
  return static_cast<float>(freq / ((1 - smooth) * freq / r.factor + smooth * freq));
}

}  // namespace

ReferenceWeights random_arch_model(const ArchSpec& s, uint32_t seed) {
  std::mt19937 rng(seed);
  ReferenceWeights w;
  w.dim = s.dim, w.hidden = s.hidden, w.layers = s.layers, w.heads = s.heads, w.kv_heads = s.kv_heads;
  w.vocab = s.vocab, w.seq = s.seq, w.head_dim = s.head_dim, w.theta = s.theta, w.eps = s.eps;
  w.rotate_half = true;
  w.scale_factor = s.scaling.factor, w.low_freq_factor = s.scaling.low_freq_factor;
  w.high_freq_factor = s.scaling.high_freq_factor;
  w.original_context = static_cast<double>(s.scaling.original_context);
  const size_t d = s.dim, hd = head_dim_of(s), q = s.heads * hd, kv = s.kv_heads * hd, L = s.layers;
  // Scaled so that activations stay of order one through the layers.
  const double wd = 1.0 / std::sqrt(static_cast<double>(d));
  w.emb = uniform(rng, s.vocab * d, 0, 1);
  w.rms_att = uniform(rng, L * d, 1, 0.2);
  w.wq = uniform(rng, L * q * d, 0, 1.5 * wd);
  w.wk = uniform(rng, L * kv * d, 0, 1.5 * wd);
  w.wv = uniform(rng, L * kv * d, 0, wd);
  w.wo = uniform(rng, L * d * q, 0, 1.0 / std::sqrt(static_cast<double>(q)));
  w.rms_ffn = uniform(rng, L * d, 1, 0.2);
  w.w1 = uniform(rng, L * s.hidden * d, 0, wd);
  w.w2 = uniform(rng, L * d * s.hidden, 0, 1.0 / std::sqrt(static_cast<double>(s.hidden)));
  w.w3 = uniform(rng, L * s.hidden * d, 0, wd);
  w.rms_final = uniform(rng, d, 1, 0.2);
  w.wcls = uniform(rng, s.vocab * d, 0, 2 * wd);
  if (s.attention_bias) {
    w.bq = uniform(rng, L * q, 0, 0.8);
    w.bk = uniform(rng, L * kv, 0, 0.8);
    w.bv = uniform(rng, L * kv, 0, 0.5);
  }
  if (s.qk_norm) {
    w.q_norm = uniform(rng, L * hd, 1, 0.5);
    w.k_norm = uniform(rng, L * hd, 1, 0.5);
  }
  return w;
}

Status write_arch_gguf(const ArchSpec& s, const ReferenceWeights& w, const std::string& path) {
  GgufWriter out;
  const std::string& a = s.arch;
  out.add_string("general.architecture", a);
  out.add_u32(a + ".embedding_length", s.dim);
  out.add_u32(a + ".feed_forward_length", s.hidden);
  out.add_u32(a + ".block_count", s.layers);
  out.add_u32(a + ".attention.head_count", s.heads);
  out.add_u32(a + ".attention.head_count_kv", s.kv_heads);
  out.add_u32(a + ".context_length", s.seq);
  out.add_f32(a + ".rope.freq_base", static_cast<float>(s.theta));
  out.add_f32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(s.eps));
  if (s.sliding_window != 0) out.add_u32(a + ".attention.sliding_window", static_cast<uint32_t>(s.sliding_window));
  const int64_t d = s.dim, hd = head_dim_of(s), q = s.heads * hd, kv = s.kv_heads * hd, hid = s.hidden;
  if (s.head_dim != 0) {
    out.add_u32(a + ".attention.key_length", static_cast<uint32_t>(hd));
    out.add_u32(a + ".attention.value_length", static_cast<uint32_t>(hd));
  }
  std::deque<std::vector<float>> buffers;  // stable until write()
  auto add = [&](const std::string& name, std::vector<float> v, std::vector<int64_t> ne) {
    const std::vector<float>& b = buffers.emplace_back(std::move(v));
    out.add_tensor(name, gguf::GgmlType::kF32, std::move(ne),
                   {reinterpret_cast<const uint8_t*>(b.data()), b.size() * sizeof(float)});
  };
  if (s.scaling.factor != 0) {
    out.add_u32(a + ".rope.scaling.original_context_length", static_cast<uint32_t>(s.scaling.original_context));
    std::vector<float> divisors;
    for (int j = 0; j < hd / 2; ++j) divisors.push_back(rope_freq_divisor(s, j));
    add("rope_freqs.weight", divisors, {hd / 2});
  }
  const bool permute = s.arch == "llama" || s.arch == "mistral";
  add("token_embd.weight", as_floats(w.emb.data(), w.emb.size()), {d, s.vocab});
  add("output_norm.weight", as_floats(w.rms_final.data(), d), {d});
  add("output.weight", as_floats(w.wcls.data(), w.wcls.size()), {d, s.vocab});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    std::vector<float> wq = layer_slice(w.wq, l, q * d), wk = layer_slice(w.wk, l, kv * d);
    if (permute) wq = to_interleaved(wq, q, d, hd), wk = to_interleaved(wk, kv, d, hd);
    add(p + "attn_norm.weight", layer_slice(w.rms_att, l, d), {d});
    add(p + "attn_q.weight", wq, {d, q});
    add(p + "attn_k.weight", wk, {d, kv});
    add(p + "attn_v.weight", layer_slice(w.wv, l, kv * d), {d, kv});
    add(p + "attn_output.weight", layer_slice(w.wo, l, d * q), {q, d});
    add(p + "ffn_norm.weight", layer_slice(w.rms_ffn, l, d), {d});
    add(p + "ffn_gate.weight", layer_slice(w.w1, l, hid * d), {d, hid});
    add(p + "ffn_down.weight", layer_slice(w.w2, l, d * hid), {hid, d});
    add(p + "ffn_up.weight", layer_slice(w.w3, l, hid * d), {d, hid});
    if (!w.bq.empty()) {
      add(p + "attn_q.bias", layer_slice(w.bq, l, q), {q});
      add(p + "attn_k.bias", layer_slice(w.bk, l, kv), {kv});
      add(p + "attn_v.bias", layer_slice(w.bv, l, kv), {kv});
    }
    if (!w.q_norm.empty()) {
      add(p + "attn_q_norm.weight", layer_slice(w.q_norm, l, hd), {hd});
      add(p + "attn_k_norm.weight", layer_slice(w.k_norm, l, hd), {hd});
    }
  }
  return out.write(path);
}

Status write_arch_hf_dir(const ArchSpec& s, const ReferenceWeights& w, const std::string& dir) {
  const int64_t d = s.dim, hd = head_dim_of(s), q = s.heads * hd, kv = s.kv_heads * hd, hid = s.hidden;
  std::deque<std::vector<float>> buffers;
  std::vector<SafetensorsWriteTensor> tensors;
  auto add = [&](const std::string& name, std::vector<float> v, std::vector<int64_t> shape) {
    const std::vector<float>& b = buffers.emplace_back(std::move(v));
    tensors.push_back({name, "F32", std::move(shape),
                       std::string_view(reinterpret_cast<const char*>(b.data()), b.size() * sizeof(float))});
  };
  add("model.embed_tokens.weight", as_floats(w.emb.data(), w.emb.size()), {s.vocab, d});
  add("model.norm.weight", as_floats(w.rms_final.data(), d), {d});
  add("lm_head.weight", as_floats(w.wcls.data(), w.wcls.size()), {s.vocab, d});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", layer_slice(w.rms_att, l, d), {d});
    add(p + "self_attn.q_proj.weight", layer_slice(w.wq, l, q * d), {q, d});
    add(p + "self_attn.k_proj.weight", layer_slice(w.wk, l, kv * d), {kv, d});
    add(p + "self_attn.v_proj.weight", layer_slice(w.wv, l, kv * d), {kv, d});
    add(p + "self_attn.o_proj.weight", layer_slice(w.wo, l, d * q), {d, q});
    add(p + "post_attention_layernorm.weight", layer_slice(w.rms_ffn, l, d), {d});
    add(p + "mlp.gate_proj.weight", layer_slice(w.w1, l, hid * d), {hid, d});
    add(p + "mlp.down_proj.weight", layer_slice(w.w2, l, d * hid), {d, hid});
    add(p + "mlp.up_proj.weight", layer_slice(w.w3, l, hid * d), {hid, d});
    if (!w.bq.empty()) {
      add(p + "self_attn.q_proj.bias", layer_slice(w.bq, l, q), {q});
      add(p + "self_attn.k_proj.bias", layer_slice(w.bk, l, kv), {kv});
      add(p + "self_attn.v_proj.bias", layer_slice(w.bv, l, kv), {kv});
    }
    if (!w.q_norm.empty()) {
      add(p + "self_attn.q_norm.weight", layer_slice(w.q_norm, l, hd), {hd});
      add(p + "self_attn.k_norm.weight", layer_slice(w.k_norm, l, hd), {hd});
    }
  }
  TANDEM_RETURN_IF_ERROR(write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}}));
  const char* cls = s.arch == "qwen2"     ? "Qwen2ForCausalLM"
                    : s.arch == "qwen3"   ? "Qwen3ForCausalLM"
                    : s.arch == "mistral" ? "MistralForCausalLM"
                                          : "LlamaForCausalLM";
  auto num = [](double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.17g", v);
    return std::string(b);
  };
  std::string config = std::string("{\"architectures\": [\"") + cls + "\"], \"hidden_size\": " + std::to_string(d) +
                       ", \"intermediate_size\": " + std::to_string(hid) + ", \"num_hidden_layers\": " +
                       std::to_string(s.layers) + ", \"num_attention_heads\": " + std::to_string(s.heads) +
                       ", \"num_key_value_heads\": " + std::to_string(s.kv_heads) + ", \"vocab_size\": " +
                       std::to_string(s.vocab) + ", \"max_position_embeddings\": " + std::to_string(s.seq) +
                       ", \"rope_theta\": " + num(s.theta) + ", \"rms_norm_eps\": " + num(s.eps) +
                       ", \"tie_word_embeddings\": false";
  if (s.head_dim != 0) config += ", \"head_dim\": " + std::to_string(hd);
  if (s.sliding_window != 0) config += ", \"sliding_window\": " + std::to_string(s.sliding_window);
  if (s.scaling.factor != 0)
    config += ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": " + num(s.scaling.factor) +
              ", \"low_freq_factor\": " + num(s.scaling.low_freq_factor) + ", \"high_freq_factor\": " +
              num(s.scaling.high_freq_factor) + ", \"original_max_position_embeddings\": " +
              std::to_string(s.scaling.original_context) + "}";
  config += "}\n";
  return write_file_atomically(dir + "/config.json", config);
}

}  // namespace tandem::testing
