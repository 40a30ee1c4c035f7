// Hugging Face directories -> ModelSource: a small sharded model written here
// with its tokenizer files, config.json's errors, FP8 scales, and stories260K
// converted to HF's layout and read back byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "runtime/formats/hf_model.h"
#include "runtime/formats/safetensors_writer.h"
#include "runtime/llama2c_loader.h"
#include "runtime/quant_blocks.h"
#include "tests/unit/hf_test_util.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

constexpr int64_t kDim = 8, kHeads = 2, kKv = 1, kHidden = 16, kLayers = 2, kVocab = 6;

std::string config_json(const std::string& extra = "") {
  return R"({"architectures":["Qwen2ForCausalLM"],"hidden_size":8,"intermediate_size":16,)"
         R"("num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":6,)"
         R"("max_position_embeddings":64,"rope_theta":1000000.0,"rms_norm_eps":1e-06,)"
         R"("tie_word_embeddings":false)" + extra + "}";
}

// Every tensor of the small model, F32, value = a distinct float per tensor
// and element, so a tensor mapped under the wrong name is noticed.
struct SmallModel {
  std::vector<std::string> bytes;
  std::vector<SafetensorsWriteTensor> tensors;
  SmallModel() {
    bytes.reserve(64);
    add("model.embed_tokens.weight", {kVocab, kDim});
    add("model.norm.weight", {kDim});
    add("lm_head.weight", {kVocab, kDim});
    for (int l = 0; l < kLayers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      add(p + "input_layernorm.weight", {kDim});
      add(p + "self_attn.q_proj.weight", {kDim, kDim});
      add(p + "self_attn.k_proj.weight", {kKv * 4, kDim});
      add(p + "self_attn.v_proj.weight", {kKv * 4, kDim});
      add(p + "self_attn.q_proj.bias", {kDim});
      add(p + "self_attn.k_proj.bias", {kKv * 4});
      add(p + "self_attn.v_proj.bias", {kKv * 4});
      add(p + "self_attn.o_proj.weight", {kDim, kDim});
      add(p + "post_attention_layernorm.weight", {kDim});
      add(p + "mlp.gate_proj.weight", {kHidden, kDim});
      add(p + "mlp.up_proj.weight", {kHidden, kDim});
      add(p + "mlp.down_proj.weight", {kDim, kHidden});
    }
  }
  void add(const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (const int64_t d : shape) n *= d;
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(tensors.size()) + 0.001f * static_cast<float>(i);
    bytes.emplace_back(reinterpret_cast<const char*>(v.data()), n * sizeof(float));
    tensors.push_back({name, "F32", std::move(shape), bytes.back()});
  }
  float first(const std::string& name) const {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (tensors[i].name == name) return static_cast<float>(i);
    return -1;
  }
};

// Llama 3 style byte-level BPE: merges in both spellings, a special added
// token, the Llama 3 split regex, BOS from the post-processor.
constexpr const char* kTokenizerJson = R"({
  "added_tokens": [{"id": 5, "content": "<|end|>", "special": true},
                   {"id": 4, "content": "<|begin|>", "special": true}],
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated"},
    {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
  "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]},
  "model": {"type": "BPE", "byte_fallback": false, "vocab": {"a": 0, "b": 1, "ab": 2, "abb": 3},
            "merges": ["a b", ["ab", "b"]]}
})";

void write_small_dir(const testing::TempDir& dir, const std::string& config) {
  SmallModel m;
  // Two shards split mid-model, as large checkpoints split.
  const size_t half = m.tensors.size() / 2;
  std::vector<SafetensorsWriteTensor> s1(m.tensors.begin(), m.tensors.begin() + half);
  std::vector<SafetensorsWriteTensor> s2(m.tensors.begin() + half, m.tensors.end());
  ASSERT_TRUE(write_safetensors(dir.file("model-00001-of-00002.safetensors"), s1).ok());
  ASSERT_TRUE(write_safetensors(dir.file("model-00002-of-00002.safetensors"), s2).ok());
  std::string index = R"({"metadata":{},"weight_map":{)";
  for (size_t i = 0; i < m.tensors.size(); ++i)
    index += std::string(i ? "," : "") + "\"" + m.tensors[i].name + "\":\"model-0000" +
             (i < half ? "1" : "2") + "-of-00002.safetensors\"";
  testing::write_file(dir.file("model.safetensors.index.json"), index + "}}");
  testing::write_file(dir.file("config.json"), config);
}

TEST(HfModel, ShardedDirectoryWithTokenizer) {
  testing::TempDir dir;
  write_small_dir(dir, config_json());
  testing::write_file(dir.file("tokenizer.json"), kTokenizerJson);
  testing::write_file(dir.file("tokenizer_config.json"),
                      R"({"bos_token": {"content": "<|begin|>", "lstrip": false}, "eos_token": "<|end|>",)"
                      R"( "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
  auto source = load_hf_source(dir.path());
  ASSERT_TRUE(source.ok()) << source.status().to_string();
  const ModelSource& s = *source;
  EXPECT_EQ(s.format, "safetensors");
  EXPECT_EQ(s.architecture, "qwen2");
  EXPECT_EQ(s.rope_layout, RopeLayout::kRotateHalf);
  EXPECT_EQ(s.config.dim, kDim);
  EXPECT_EQ(s.config.hidden_dim, kHidden);
  EXPECT_EQ(s.config.n_layers, kLayers);
  EXPECT_EQ(s.config.n_heads, kHeads);
  EXPECT_EQ(s.config.n_kv_heads, kKv);
  EXPECT_EQ(s.config.vocab_size, kVocab);
  EXPECT_EQ(s.config.max_seq_len, 64);
  EXPECT_FLOAT_EQ(s.config.rope_theta, 1e6f);
  EXPECT_FLOAT_EQ(s.config.norm_eps, 1e-6f);
  EXPECT_FALSE(s.config.shared_classifier);
  EXPECT_EQ(s.config.rope_scaling.factor, 0.0f);
  const SmallModel m;
  const std::pair<const char*, const char*> names[] = {
      {"embedding", "model.embed_tokens.weight"},
      {"classifier", "lm_head.weight"},
      {"final_norm", "model.norm.weight"},
      {"layers.1.wq", "model.layers.1.self_attn.q_proj.weight"},
      {"layers.1.bk", "model.layers.1.self_attn.k_proj.bias"},
      {"layers.0.w_down", "model.layers.0.mlp.down_proj.weight"},
      {"layers.0.w_up", "model.layers.0.mlp.up_proj.weight"},
      {"layers.0.ffn_norm", "model.layers.0.post_attention_layernorm.weight"}};
  for (const auto& [ours, hf] : names) {
    auto t = find_tensor(s, ours);
    ASSERT_TRUE(t.ok()) << ours;
    float v = 0;
    std::memcpy(&v, (*t)->data, 4);
    EXPECT_EQ(v, m.first(hf)) << ours;
    EXPECT_EQ((*t)->dtype, SourceDType::kF32);
  }
  EXPECT_EQ(s.tensors.size(), 3u + 12u * kLayers);

  ASSERT_TRUE(s.has_tokenizer);
  const TokenizerSpec& tok = s.tokenizer;
  EXPECT_EQ(tok.model, "gpt2");
  EXPECT_EQ(tok.pre, "llama-bpe");
  EXPECT_EQ(tok.tokens, (std::vector<std::string>{"a", "b", "ab", "abb", "<|begin|>", "<|end|>"}));
  EXPECT_EQ(tok.token_types, (std::vector<int32_t>{1, 1, 1, 1, 3, 3}));
  EXPECT_EQ(tok.merges, (std::vector<std::string>{"a b", "ab b"}));
  EXPECT_EQ(tok.bos, 4);
  EXPECT_EQ(tok.eos, 5);
  EXPECT_TRUE(tok.add_bos);  // from the post-processor's template
  EXPECT_FALSE(tok.add_eos);
  EXPECT_EQ(tok.chat_template, "D");
}

TEST(HfModel, SentencePieceStyleTokenizer) {
  testing::TempDir dir;
  write_small_dir(dir, config_json());
  testing::write_file(dir.file("tokenizer.json"), R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true},
                     {"id": 2, "content": "</s>", "special": true}, {"id": 7, "content": "[x]", "special": false}],
    "model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
              "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "▁": 4, "t": 5, "▁t": 6},
              "merges": ["▁ t"]}})");
  testing::write_file(dir.file("tokenizer_config.json"), R"({"add_bos_token": true, "add_eos_token": true, "chat_template": "C"})");
  auto source = load_hf_source(dir.path());
  ASSERT_TRUE(source.ok()) << source.status().to_string();
  const TokenizerSpec& tok = source->tokenizer;
  EXPECT_EQ(tok.model, "llama");
  ASSERT_EQ(tok.tokens.size(), 8u);
  EXPECT_EQ(tok.token_types, (std::vector<int32_t>{2, 3, 3, 6, 1, 1, 1, 4}));
  EXPECT_EQ(tok.unk, 0);
  EXPECT_EQ(tok.bos, 1);
  EXPECT_EQ(tok.eos, 2);
  EXPECT_TRUE(tok.add_eos);
  EXPECT_EQ(tok.chat_template, "C");
  // "▁t" is formed by merge 0, so it outscores every piece no merge forms.
  ASSERT_EQ(tok.scores.size(), 8u);
  EXPECT_EQ(tok.scores[6], 0.0f);
  EXPECT_LT(tok.scores[5], tok.scores[6]);
}

Status config_error(const std::string& config) {
  testing::TempDir dir;
  write_small_dir(dir, config);
  return load_hf_source(dir.path()).status();
}

TEST(HfModel, ConfigErrorsNameTheKey) {
  struct Case {
    std::string config;
    StatusCode code;
    const char* names;
  } cases[] = {
      {R"({"architectures":["LlamaForCausalLM"],"hidden_size":"8"})", StatusCode::kInvalidArgument, "hidden_size"},
      {config_json(R"(,"rope_theta":"big")"), StatusCode::kInvalidArgument, "rope_theta"},
      {config_json(R"(,"tie_word_embeddings":1)"), StatusCode::kInvalidArgument, "tie_word_embeddings"},
      {R"({"architectures":["GPT2LMHeadModel"],"hidden_size":8})", StatusCode::kUnimplemented, "GPT2LMHeadModel"},
      {R"({"architectures":"LlamaForCausalLM"})", StatusCode::kInvalidArgument, "architectures"},
      {R"({"architectures":["LlamaForCausalLM"],"hidden_size":8,"intermediate_size":16,"num_hidden_layers":2})",
       StatusCode::kInvalidArgument, "num_attention_heads"},
      {config_json(R"(,"head_dim":0)"), StatusCode::kInvalidArgument, "head_dim"},
      {config_json(R"(,"rope_scaling":{"rope_type":"yarn","factor":4.0})"), StatusCode::kUnimplemented, "yarn"},
      {config_json(R"(,"rope_scaling":{"rope_type":"llama3","factor":"8"})"), StatusCode::kInvalidArgument, "factor"},
      {config_json(R"(,"quantization_config":{"quant_method":"gptq"})"), StatusCode::kUnimplemented, "gptq"},
      {config_json(R"(,"num_hidden_layers":1)"), StatusCode::kInvalidArgument, "layer 1"},
      {"{not json", StatusCode::kDataLoss, "config.json"},
      {"[]", StatusCode::kInvalidArgument, "config.json"},
  };
  for (const Case& c : cases) {
    const Status s = config_error(c.config);
    EXPECT_EQ(s.code(), c.code) << c.config << " -> " << s.to_string();
    EXPECT_NE(s.message().find(c.names), std::string::npos) << c.config << " -> " << s.to_string();
  }
}

// Deep nesting would overflow the stack of anything recursive that meets it
// (nlohmann's dump in an error message, the post_processor walk): refused
// whole before parsing, wherever it is.
TEST(HfModel, HostileTokenizerJsonIsRefusedNotCrashedOn) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  const std::string deep_processors =
      [] { std::string s; for (int i = 0; i < 200000; ++i) s += R"({"processors":[)"; for (int i = 0; i < 200000; ++i) s += "]}"; return s; }();
  struct Case {
    std::string json;
    const char* words;
  } cases[] = {
      {R"({"model":{"vocab":{"a":)" + deep + "}}}", "nests deeper than 64"},
      {R"({"model":{"vocab":{"a":0}},"post_processor":)" + deep_processors + "}", "nests deeper than 64"},
      {R"({"model":{"vocab":{"a":[[1]]}}})", "has id of type array"},
      {R"({"model":{"vocab":{"a":-3}}})", "has id -3"},
  };
  // An added token restating a vocabulary id with other text: the old text
  // no longer names that id, so a role cannot resolve through it.
  {
    testing::TempDir dir;
    write_small_dir(dir, config_json());
    testing::write_file(dir.file("tokenizer.json"),
                        R"({"model":{"vocab":{"a":0,"<s>":1}},"added_tokens":[{"id":1,"content":"<bos>","special":true}]})");
    testing::write_file(dir.file("tokenizer_config.json"), R"({"bos_token":"<s>"})");
    auto source = load_hf_source(dir.path());
    ASSERT_FALSE(source.ok() && source->tokenizer.bos == 1) << "bos resolved through text the id no longer has";
    EXPECT_NE(source.status().message().find("bos_token"), std::string::npos) << source.status().to_string();
  }
  for (const Case& c : cases) {
    testing::TempDir dir;
    write_small_dir(dir, config_json());
    testing::write_file(dir.file("tokenizer.json"), c.json);
    auto source = load_hf_source(dir.path());
    ASSERT_FALSE(source.ok()) << c.json.substr(0, 60);
    EXPECT_EQ(source.status().code(), StatusCode::kInvalidArgument) << source.status().to_string();
    EXPECT_NE(source.status().message().find(c.words), std::string::npos) << source.status().to_string();
  }
}

TEST(HfModel, Llama3RopeScaling) {
  testing::TempDir dir;
  write_small_dir(dir, config_json(R"(,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,)"
                                   R"("high_freq_factor":4.0,"original_max_position_embeddings":8192})"));
  auto source = load_hf_source(dir.path());
  ASSERT_TRUE(source.ok()) << source.status().to_string();
  EXPECT_EQ(source->config.rope_scaling.factor, 8.0f);
  EXPECT_EQ(source->config.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(source->config.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(source->config.rope_scaling.original_context, 8192);
  EXPECT_FALSE(source->has_tokenizer);
}

// The small model with layer 0's q_proj in FP8 with [4, 4]-tile scales
// (weight_scale_inv) and gate_proj in FP8 with one scale per row (weight_scale).
TEST(HfModel, Fp8ScalesBlockAndPerRow) {
  testing::TempDir dir;
  SmallModel m;
  const std::string q(kDim * kDim, '\x38');  // e4m3 1.0
  const std::string gate(kHidden * kDim, '\x40');  // e4m3 2.0
  std::vector<float> tile_scales = {0.5f, 0.25f, 2.0f, 4.0f};  // [2, 2] tiles of [4, 4]
  std::vector<float> row_scales(kHidden);
  for (int i = 0; i < kHidden; ++i) row_scales[i] = 0.125f * static_cast<float>(i + 1);
  const std::string tiles(reinterpret_cast<const char*>(tile_scales.data()), 16);
  std::string rows(kHidden * 2, '\0');  // BF16 scales: converted to f32 on load
  for (int i = 0; i < kHidden; ++i) {
    const uint16_t h = quant::bf16_from_f32(row_scales[i]);
    rows[2 * i] = static_cast<char>(h & 0xff);
    rows[2 * i + 1] = static_cast<char>(h >> 8);
  }
  for (auto& t : m.tensors) {
    if (t.name == "model.layers.0.self_attn.q_proj.weight") t = {t.name, "F8_E4M3", t.shape, q};
    if (t.name == "model.layers.0.mlp.gate_proj.weight") t = {t.name, "F8_E4M3", t.shape, gate};
  }
  const std::string up(kHidden * kDim, '\x38');
  const float whole_scale = 3.0f;
  const std::string whole(reinterpret_cast<const char*>(&whole_scale), 4);
  for (auto& t : m.tensors)
    if (t.name == "model.layers.1.mlp.up_proj.weight") t = {t.name, "F8_E4M3", t.shape, up};
  m.tensors.push_back({"model.layers.1.mlp.up_proj.weight_scale_inv", "F32", {}, whole});
  m.tensors.push_back({"model.layers.0.self_attn.q_proj.weight_scale_inv", "F32", {2, 2}, tiles});
  m.tensors.push_back({"model.layers.0.mlp.gate_proj.weight_scale", "BF16", {kHidden, 1}, rows});
  ASSERT_TRUE(write_safetensors(dir.file("model.safetensors"), m.tensors).ok());
  testing::write_file(dir.file("config.json"),
                      config_json(R"(,"quantization_config":{"quant_method":"fp8","weight_block_size":[4,4]})"));
  auto source = load_hf_source(dir.path());
  ASSERT_TRUE(source.ok()) << source.status().to_string();
  const SourceTensor& wq = *find_tensor(*source, "layers.0.wq").value();
  EXPECT_EQ(wq.dtype, SourceDType::kF8E4M3);
  EXPECT_EQ(wq.fp8_block_rows, 4);
  EXPECT_EQ(wq.fp8_block_cols, 4);
  ASSERT_NE(wq.fp8_scales, nullptr);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(wq.fp8_scales[i], tile_scales[i]);
  const SourceTensor& g = *find_tensor(*source, "layers.0.w_gate").value();
  EXPECT_EQ(g.fp8_block_rows, 1);
  EXPECT_EQ(g.fp8_block_cols, kDim);
  for (int i = 0; i < kHidden; ++i) EXPECT_EQ(g.fp8_scales[i], row_scales[i]);  // exact in bf16
  EXPECT_EQ(find_tensor(*source, "layers.1.wq").value()->fp8_scales, nullptr);
  const SourceTensor& up1 = *find_tensor(*source, "layers.1.w_up").value();  // one scale for all
  EXPECT_EQ(up1.fp8_block_rows, kHidden);
  EXPECT_EQ(up1.fp8_block_cols, kDim);
  EXPECT_EQ(up1.fp8_scales[0], 3.0f);

  // A scale of another shape, and an FP8 matrix without scales, are refused.
  m.tensors.back().shape = {kHidden / 2, 2};
  ASSERT_TRUE(write_safetensors(dir.file("model.safetensors"), m.tensors).ok());
  Status s = load_hf_source(dir.path()).status();
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s.to_string();
  EXPECT_NE(s.message().find("gate_proj.weight_scale"), std::string::npos) << s.to_string();
  m.tensors.pop_back();
  ASSERT_TRUE(write_safetensors(dir.file("model.safetensors"), m.tensors).ok());
  s = load_hf_source(dir.path()).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
}

TEST(HfModel, UnsupportedDtypeOfANeededTensor) {
  testing::TempDir dir;
  SmallModel m;
  for (auto& t : m.tensors)
    if (t.name == "model.norm.weight") t = {t.name, "I32", t.shape, t.bytes};
  ASSERT_TRUE(write_safetensors(dir.file("model.safetensors"), m.tensors).ok());
  testing::write_file(dir.file("config.json"), config_json());
  const Status s = load_hf_source(dir.path()).status();
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s.to_string();
  EXPECT_NE(s.message().find("model.norm.weight"), std::string::npos) << s.to_string();
}

// stories260K written as an HF directory (Q/K permuted to rotate-half) reads
// back as the llama2.c file's bytes once the test undoes the permutation.
TEST(HfModel, Stories260KConvertedReadsBackExactly) {
  testing::TempDir dir;
  ASSERT_TRUE(testing::write_hf_dir_from_llama2c(testing::bundled_checkpoint(), dir.path(), SourceDType::kF32).ok());
  auto source = load_hf_source(dir.path());
  ASSERT_TRUE(source.ok()) << source.status().to_string();
  auto ref = load_llama2c(testing::bundled_checkpoint());
  ASSERT_TRUE(ref.ok());
  const LlamaConfig& c = ref->config;
  EXPECT_EQ(source->config.dim, c.dim);
  EXPECT_EQ(source->config.n_kv_heads, c.n_kv_heads);
  EXPECT_EQ(source->config.hidden_dim, c.hidden_dim);
  EXPECT_EQ(source->config.max_seq_len, c.max_seq_len);
  EXPECT_TRUE(source->config.shared_classifier);
  EXPECT_FALSE(source->has_tokenizer);
  auto same = [&](const std::string& name, const Tensor& want, bool permuted) {
    const SourceTensor* t = find_tensor(*source, name).value();
    ASSERT_EQ(t->bytes, want.bytes()) << name;
    const int64_t cols = want.row_length();
    for (int64_t r = 0; r < want.rows(); ++r) {
      // The permutation, undone: HF row r holds llama2.c row 2j + p of its
      // head, where r = head * head_dim + p * head_dim / 2 + j.
      const int64_t hd = c.head_dim(), p = (r % hd) / (hd / 2), j = r % (hd / 2);
      const int64_t orig = permuted ? r / hd * hd + 2 * j + p : r;
      ASSERT_EQ(std::memcmp(t->data + r * cols * 4, want.f32() + orig * cols, cols * 4), 0)
          << name << " row " << r;
    }
  };
  same("embedding", ref->embedding, false);
  same("final_norm", ref->final_norm, false);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LlamaLayerWeights& L = ref->layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    same(p + "wq", L.wq, true);
    same(p + "wk", L.wk, true);
    same(p + "wv", L.wv, false);
    same(p + "wo", L.wo, false);
    same(p + "attn_norm", L.attn_norm, false);
    same(p + "ffn_norm", L.ffn_norm, false);
    same(p + "w_gate", L.w_gate, false);
    same(p + "w_up", L.w_up, false);
    same(p + "w_down", L.w_down, false);
  }
}

// The F16 and BF16 conversions hold each weight to the dtype's precision.
TEST(HfModel, Stories260KConvertedInHalfPrecision) {
  auto ref = load_llama2c(testing::bundled_checkpoint());
  ASSERT_TRUE(ref.ok());
  for (const SourceDType dtype : {SourceDType::kF16, SourceDType::kBF16}) {
    testing::TempDir dir;
    ASSERT_TRUE(testing::write_hf_dir_from_llama2c(testing::bundled_checkpoint(), dir.path(), dtype).ok());
    auto source = load_hf_source(dir.path());
    ASSERT_TRUE(source.ok()) << source.status().to_string();
    const SourceTensor* w = find_tensor(*source, "layers.2.w_down").value();
    ASSERT_EQ(w->dtype, dtype);
    const Tensor& want = ref->layers[2].w_down;
    ASSERT_EQ(w->bytes, static_cast<uint64_t>(want.numel()) * 2);
    // Relative error of round-to-nearest: 2^-11 (f16), 2^-8 (bf16); f16's
    // subnormals below 2^-14 hold an absolute 2^-25.
    const double rel = dtype == SourceDType::kF16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
    for (int64_t i = 0; i < want.numel(); ++i) {
      const uint16_t h = static_cast<uint16_t>(w->data[2 * i] | w->data[2 * i + 1] << 8);
      const double got = dtype == SourceDType::kF16 ? quant::f32_from_f16(h) : quant::f32_from_bf16(h);
      const double x = want.f32()[i];
      ASSERT_LE(std::fabs(got - x), std::fabs(x) * rel + std::ldexp(1.0, -25)) << i;
    }
  }
}

}  // namespace
}  // namespace tandem
