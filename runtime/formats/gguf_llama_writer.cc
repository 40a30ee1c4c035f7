#include "runtime/formats/gguf_llama_writer.h"

#include <cstdint>
#include <utility>

namespace tandem {
namespace {

const char kSpmSpace[] = "\xe2\x96\x81";  // U+2581, SentencePiece's space

void add_id(GgufWriter& w, const char* key, int32_t id) {
  if (id >= 0) w.add_u32(key, static_cast<uint32_t>(id));
}

}  // namespace

void add_gguf_llama_config(GgufWriter& w, const LlamaConfig& c) {
  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.embedding_length", u32(c.dim));
  w.add_u32("llama.feed_forward_length", u32(c.hidden_dim));
  w.add_u32("llama.block_count", u32(c.n_layers));
  w.add_u32("llama.attention.head_count", u32(c.n_heads));
  w.add_u32("llama.attention.head_count_kv", u32(c.n_kv_heads));
  w.add_u32("llama.context_length", u32(c.max_seq_len));
  w.add_u32("llama.rope.dimension_count", u32(c.head_dim()));
  if (c.explicit_head_dim != 0) {  // heads wider than dim / n_heads (Qwen3)
    w.add_u32("llama.attention.key_length", u32(c.head_dim()));
    w.add_u32("llama.attention.value_length", u32(c.head_dim()));
  }
  w.add_f32("llama.rope.freq_base", c.rope_theta);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  w.add_u32("llama.vocab_size", u32(c.vocab_size));
}

std::string gguf_tensor_name(std::string_view canonical) {
  if (canonical == "embedding") return "token_embd.weight";
  if (canonical == "final_norm") return "output_norm.weight";
  if (canonical == "classifier") return "output.weight";
  if (!canonical.starts_with("layers.")) return "";
  const std::string_view rest = canonical.substr(7);
  const size_t dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0) return "";
  const std::string_view layer = rest.substr(0, dot);
  for (char ch : layer)
    if (ch < '0' || ch > '9') return "";
  const std::string_view part = rest.substr(dot + 1);
  static constexpr std::pair<std::string_view, std::string_view> kParts[] = {
      {"attn_norm", "attn_norm"}, {"wq", "attn_q"},         {"wk", "attn_k"},
      {"wv", "attn_v"},           {"wo", "attn_output"},    {"ffn_norm", "ffn_norm"},
      {"w_gate", "ffn_gate"},     {"w_down", "ffn_down"},   {"w_up", "ffn_up"}};
  for (const auto& [from, to] : kParts)
    if (part == from) return "blk." + std::string(layer) + "." + std::string(to) + ".weight";
  return "";
}

std::optional<gguf::GgmlType> ggml_type_of(DType dtype) {
  switch (dtype) {
    case DType::kF32: return gguf::GgmlType::kF32;
    case DType::kF16: return gguf::GgmlType::kF16;
    case DType::kBF16: return gguf::GgmlType::kBF16;
    case DType::kQ8_0: return gguf::GgmlType::kQ8_0;
    case DType::kQ4_0: return gguf::GgmlType::kQ4_0;
    case DType::kQ4K: return gguf::GgmlType::kQ4_K;
    default: return std::nullopt;
  }
}

Result<TokenizerSpec> tokenizer_spec_from_llama2c(const Tokenizer& t) {
  if (t.is_byte_level()) return InvalidArgument("a byte-level tokenizer is no llama2.c (SentencePiece) vocabulary");
  TokenizerSpec spec;
  spec.model = "llama";
  spec.tokens.reserve(static_cast<size_t>(t.vocab_size()));
  for (int id = 0; id < t.vocab_size(); ++id) {
    const TokenType type = t.token_type(id);
    std::string piece;
    if (id == t.bos_id() && type == kTokenControl) {
      piece = "<s>";
    } else if (id == t.eos_id() && type == kTokenControl) {
      piece = "</s>";
    } else {
      for (char c : t.piece(id)) piece += c == ' ' ? std::string(kSpmSpace) : std::string(1, c);
    }
    spec.tokens.push_back(std::move(piece));
    spec.scores.push_back(t.score(id));
    spec.token_types.push_back(static_cast<int32_t>(type));
  }
  spec.bos = t.bos_id();
  spec.eos = t.eos_id();
  spec.unk = t.unk_id();
  spec.add_bos = true;
  spec.add_eos = false;
  return spec;
}

void add_gguf_tokenizer(GgufWriter& w, const TokenizerSpec& spec) {
  w.add_string("tokenizer.ggml.model", spec.model);
  if (!spec.pre.empty()) w.add_string("tokenizer.ggml.pre", spec.pre);
  w.add_string_array("tokenizer.ggml.tokens", spec.tokens);
  if (!spec.scores.empty()) w.add_f32_array("tokenizer.ggml.scores", spec.scores);
  if (!spec.token_types.empty()) w.add_i32_array("tokenizer.ggml.token_type", spec.token_types);
  if (!spec.merges.empty()) w.add_string_array("tokenizer.ggml.merges", spec.merges);
  add_id(w, "tokenizer.ggml.bos_token_id", spec.bos);
  add_id(w, "tokenizer.ggml.eos_token_id", spec.eos);
  add_id(w, "tokenizer.ggml.unknown_token_id", spec.unk);
  add_id(w, "tokenizer.ggml.padding_token_id", spec.pad);
  w.add_bool("tokenizer.ggml.add_bos_token", spec.add_bos);
  w.add_bool("tokenizer.ggml.add_eos_token", spec.add_eos);
  if (!spec.chat_template.empty()) w.add_string("tokenizer.chat_template", spec.chat_template);
}

}  // namespace tandem
