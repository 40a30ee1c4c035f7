#include "sharding/model_presets.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace tandem::sharding {
namespace {

struct Preset {
  std::string_view name;
  int64_t dim, hidden, layers, heads, kv_heads, vocab, context;
  float rope_theta;
  bool shared_classifier;
};

// Llama 3.1: Meta's params.json / config.json (dim, ffn hidden, layers,
// heads, KV heads, vocab 128256, context 131072, rope_theta 500000,
// tie_word_embeddings false). stories*: llama2.c's published checkpoints.
constexpr Preset kPresets[] = {
    {"llama-3.1-8b", 4096, 14336, 32, 32, 8, 128256, 131072, 500000.0f, false},
    {"llama-3.1-70b", 8192, 28672, 80, 64, 8, 128256, 131072, 500000.0f, false},
    {"llama-3.1-405b", 16384, 53248, 126, 128, 8, 128256, 131072, 500000.0f, false},
    {"stories260K", 64, 172, 5, 8, 4, 512, 512, 10000.0f, true},
    {"stories110M", 768, 2048, 12, 12, 12, 32000, 1024, 10000.0f, true},
};

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

Result<LlamaConfig> model_preset(std::string_view name) {
  for (const Preset& p : kPresets) {
    if (!same_name(name, p.name)) continue;
    LlamaConfig c;
    c.dim = p.dim;
    c.hidden_dim = p.hidden;
    c.n_layers = p.layers;
    c.n_heads = p.heads;
    c.n_kv_heads = p.kv_heads;
    c.vocab_size = p.vocab;
    c.max_seq_len = p.context;
    c.rope_theta = p.rope_theta;
    c.shared_classifier = p.shared_classifier;
    return c;
  }
  // Known, so the answer is "not yet" rather than "never heard of it": its
  // experts' weights and routing are not dense layers this planner counts.
  if (same_name(name, "qwen3-235b-a22b"))
    return Unimplemented("qwen3-235b-a22b is a mixture-of-experts model (128 experts, 8 active per "
                         "token): MoE comes later; the planner counts dense Llama-family layers only");
  return NotFound("no model preset named '" + std::string(name) + "' (known: " +
                  std::string(model_preset_names()) + ", or a llama2.c checkpoint path)");
}

std::string_view model_preset_names() {
  return "llama-3.1-8b, llama-3.1-70b, llama-3.1-405b, stories260K, stories110M";
}

}  // namespace tandem::sharding
