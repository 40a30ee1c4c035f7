// Writes the GGUF fuzzer's seed corpus into the directory named by argv[1]:
// small files that reach every part of the parser and of the ModelSource
// mapping (llama and qwen2 models, both tokenizer kinds, Llama 3 scaling by
// metadata and by table, quantized tensors, every metadata value type), so
// the fuzzer starts from valid structure instead of guessing the magic.
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "runtime/formats/gguf_writer.h"

namespace {

using tandem::GgufWriter;
using tandem::Status;
using tandem::gguf::GgmlType;

struct Model {
  std::string arch = "llama";
  int64_t dim = 8, heads = 2, kv_heads = 1, hidden = 16, layers = 1, vocab = 4;
  GgmlType matrix_type = GgmlType::kF32;
  bool output = false, biases = false, qk_norms = false, gpt2 = false, rope_table = false;
};

Status write_model(const Model& m, const std::string& path) {
  GgufWriter w;
  std::deque<std::vector<uint8_t>> buffers;
  const auto key = [&](const char* k) { return m.arch + "." + k; };
  w.add_string("general.architecture", m.arch);
  w.add_u32(key("embedding_length"), static_cast<uint32_t>(m.dim));
  w.add_u32(key("feed_forward_length"), static_cast<uint32_t>(m.hidden));
  w.add_u32(key("block_count"), static_cast<uint32_t>(m.layers));
  w.add_u32(key("attention.head_count"), static_cast<uint32_t>(m.heads));
  w.add_u32(key("attention.head_count_kv"), static_cast<uint32_t>(m.kv_heads));
  w.add_u32(key("context_length"), 64);
  w.add_f32(key("rope.freq_base"), 10000.0f);
  std::vector<std::string> tokens;
  for (int64_t i = 0; i < m.vocab; ++i) tokens.push_back(i == 0 ? "<unk>" : std::string(1, static_cast<char>('a' + i)));
  w.add_string("tokenizer.ggml.model", m.gpt2 ? "gpt2" : "llama");
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  if (m.gpt2) {
    w.add_string("tokenizer.ggml.pre", "qwen2");
    w.add_string_array("tokenizer.ggml.merges", {"b c", "bc d"});
  } else {
    const std::vector<float> scores(static_cast<size_t>(m.vocab), -1.0f);
    w.add_f32_array("tokenizer.ggml.scores", scores);
  }
  const std::vector<int32_t> types(static_cast<size_t>(m.vocab), 1);
  w.add_i32_array("tokenizer.ggml.token_type", types);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_string("tokenizer.chat_template", "{{ bos_token }}");
  if (m.rope_table) {
    w.add_string(key("rope.scaling.type"), "llama3");
    w.add_f32(key("rope.scaling.factor"), 8.0f);
  }

  const auto add = [&](const std::string& name, std::vector<int64_t> ne, GgmlType type) {
    int64_t n = 1;
    for (const int64_t d : ne) n *= d;
    const int64_t bytes = n / tandem::gguf::ggml_block_elems(type) * tandem::gguf::ggml_block_bytes(type);
    std::vector<uint8_t>& b = buffers.emplace_back(static_cast<size_t>(bytes));
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 37 + 11);
    w.add_tensor(name, type, std::move(ne), b);
  };
  const int64_t head_dim = m.dim / m.heads, kv = m.kv_heads * head_dim;
  add("token_embd.weight", {m.dim, m.vocab}, GgmlType::kF16);
  add("output_norm.weight", {m.dim}, GgmlType::kF32);
  if (m.output) add("output.weight", {m.dim, m.vocab}, m.matrix_type);
  if (m.rope_table) {
    // Llama 3 divisors for head_dim 4 at theta 10000: both frequencies are
    // short-wavelength, so the table is all ones, which the loader accepts.
    std::vector<uint8_t>& b = buffers.emplace_back(head_dim / 2 * 4);
    const float one = 1.0f;
    for (size_t i = 0; i < b.size(); i += 4) std::memcpy(&b[i], &one, 4);
    w.add_tensor("rope_freqs.weight", GgmlType::kF32, {head_dim / 2}, b);
  }
  for (int64_t l = 0; l < m.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {m.dim}, GgmlType::kF32);
    add(p + "attn_q.weight", {m.dim, m.dim}, m.matrix_type);
    add(p + "attn_k.weight", {m.dim, kv}, m.matrix_type);
    add(p + "attn_v.weight", {m.dim, kv}, m.matrix_type);
    add(p + "attn_output.weight", {m.dim, m.dim}, m.matrix_type);
    add(p + "ffn_norm.weight", {m.dim}, GgmlType::kF32);
    add(p + "ffn_gate.weight", {m.dim, m.hidden}, m.matrix_type);
    add(p + "ffn_down.weight", {m.hidden, m.dim}, m.matrix_type);
    add(p + "ffn_up.weight", {m.dim, m.hidden}, m.matrix_type);
    if (m.biases)
      for (const char* b : {"attn_q.bias", "attn_k.bias", "attn_v.bias"})
        add(p + b, {std::string(b) == "attn_q.bias" ? m.dim : kv}, GgmlType::kF32);
    if (m.qk_norms) {
      add(p + "attn_q_norm.weight", {head_dim}, GgmlType::kF32);
      add(p + "attn_k_norm.weight", {head_dim}, GgmlType::kF32);
    }
  }
  return w.write(path);
}

// Not a model: one key of every value type (a nested array too), and the
// k-quant tensors, whose 256-element rows are too wide for the seed models.
Status write_kitchen_sink(const std::string& path) {
  GgufWriter w(64);
  w.add_u8("k.u8", 1);
  w.add_i32("k.i32", -1);
  w.add_u32("k.u32", 2);
  w.add_u64("k.u64", 3);
  w.add_f32("k.f32", 0.5f);
  w.add_f64("k.f64", 0.25);
  w.add_bool("k.bool", true);
  w.add_string("k.string", "s");
  w.add_string_array("k.strings", {"x", "yz"});
  const float floats[] = {1.0f};
  w.add_f32_array("k.floats", floats);
  const int32_t ints[] = {7, 8};
  w.add_i32_array("k.ints", ints);
  // An array of one array of one u8, copied in as raw value bytes.
  const uint8_t nested_raw[] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5};
  tandem::gguf::Value nested;
  nested.type = tandem::gguf::ValueType::kArray;
  nested.element_type = tandem::gguf::ValueType::kArray;
  nested.count = 1;
  nested.raw = nested_raw;
  w.add_value("k.nested", nested);
  std::vector<uint8_t> q4k(144), q6k(210), q4_0(18), bf16(4);
  w.add_tensor("q4_k", GgmlType::kQ4_K, {256}, q4k);
  w.add_tensor("q6_k", GgmlType::kQ6_K, {256}, q6k);
  w.add_tensor("q4_0", GgmlType::kQ4_0, {32}, q4_0);
  w.add_tensor("bf16", GgmlType::kBF16, {2}, bf16);
  return w.write(path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  Model llama;
  Model qwen2;
  qwen2.arch = "qwen2";
  qwen2.biases = qwen2.output = qwen2.gpt2 = true;
  Model qwen3;
  qwen3.arch = "qwen3";
  qwen3.qk_norms = true;
  Model scaled;
  scaled.heads = 2;
  scaled.rope_table = true;
  Model quantized;
  quantized.dim = 32;
  quantized.heads = 4;
  quantized.kv_heads = 2;
  quantized.hidden = 64;
  quantized.output = true;
  quantized.matrix_type = GgmlType::kQ8_0;
  const std::pair<const char*, Status> seeds[] = {
      {"llama.gguf", write_model(llama, dir + "/llama.gguf")},
      {"qwen2.gguf", write_model(qwen2, dir + "/qwen2.gguf")},
      {"qwen3.gguf", write_model(qwen3, dir + "/qwen3.gguf")},
      {"llama3_scaling.gguf", write_model(scaled, dir + "/llama3_scaling.gguf")},
      {"q8_0.gguf", write_model(quantized, dir + "/q8_0.gguf")},
      {"metadata.gguf", write_kitchen_sink(dir + "/metadata.gguf")},
  };
  int failed = 0;
  for (const auto& [name, status] : seeds) {
    if (status.ok()) continue;
    std::fprintf(stderr, "%s: %s\n", name, status.to_string().c_str());
    failed = 1;
  }
  return failed;
}
