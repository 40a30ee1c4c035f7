// GGUF files -> ModelSource: synthetic llama/qwen files written with
// GgufWriter load with the config their keys state, canonical names, shapes
// flipped to outermost first, data viewed in place, and the tokenizer spec;
// missing or inconsistent pieces give errors naming them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "runtime/llama2c_loader.h"
#include "tests/unit/gguf_synthetic.h"

namespace tandem {
namespace {

using gguf::GgmlType;
using testing::GgufModelTest;
using testing::Synthetic;

TEST_F(GgufModelTest, LlamaFileBecomesAModelSource) {
  Synthetic s;
  auto src = load(s);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_EQ(src->format, "gguf");
  EXPECT_EQ(src->architecture, "llama");
  EXPECT_EQ(src->path, path_);
  const LlamaConfig& c = src->config;
  EXPECT_EQ(c.dim, 16);
  EXPECT_EQ(c.hidden_dim, 32);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.vocab_size, 8);
  EXPECT_EQ(c.max_seq_len, 128);
  EXPECT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.norm_eps, 1e-6f);
  EXPECT_TRUE(c.shared_classifier);
  EXPECT_EQ(src->rope_layout, RopeLayout::kInterleaved);
  EXPECT_EQ(src->config.rope_scaling.factor, 0.0f);
  EXPECT_FALSE(src->storage.empty());

  // Canonical names, shapes outermost first, the written values in place.
  const std::pair<const char*, const char*> names[] = {
      {"token_embd.weight", "embedding"},          {"output_norm.weight", "final_norm"},
      {"blk.1.attn_k.weight", "layers.1.wk"},      {"blk.0.ffn_gate.weight", "layers.0.w_gate"},
      {"blk.1.ffn_down.weight", "layers.1.w_down"}, {"blk.0.attn_output.weight", "layers.0.wo"}};
  for (const auto& [gguf_name, canonical] : names) {
    auto t = find_tensor(*src, canonical);
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    const std::vector<float>& want = s.written.at(gguf_name);
    EXPECT_EQ((*t)->dtype, SourceDType::kF32);
    ASSERT_EQ((*t)->bytes, want.size() * sizeof(float)) << canonical;
    EXPECT_EQ(std::memcmp((*t)->data, want.data(), (*t)->bytes), 0) << canonical;
  }
  EXPECT_EQ((*find_tensor(*src, "embedding"))->shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ((*find_tensor(*src, "layers.1.wk"))->shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ((*find_tensor(*src, "layers.0.w_gate"))->shape, (std::vector<int64_t>{32, 16}));
  EXPECT_EQ((*find_tensor(*src, "layers.1.w_down"))->shape, (std::vector<int64_t>{16, 32}));
  EXPECT_FALSE(find_tensor(*src, "classifier").ok());
  EXPECT_EQ(src->tensors.size(), 2u + 2 * 9);

  ASSERT_TRUE(src->has_tokenizer);
  const TokenizerSpec& t = src->tokenizer;
  EXPECT_EQ(t.model, "llama");
  EXPECT_EQ(t.tokens.size(), 8u);
  EXPECT_EQ(t.tokens[6], "\xE2\x96\x81" "a");
  EXPECT_EQ(t.scores, (std::vector<float>{0, 0, 0, -1, -2, -3, -4, -5}));
  EXPECT_EQ(t.token_types, (std::vector<int32_t>{2, 3, 3, 1, 1, 1, 1, 1}));
  EXPECT_EQ(t.bos, 1);
  EXPECT_EQ(t.eos, 2);
  EXPECT_EQ(t.unk, 0);   // SentencePiece's default, as llama.cpp assumes
  EXPECT_EQ(t.pad, -1);  // 100 is past the vocabulary
  EXPECT_TRUE(t.add_bos);
  EXPECT_FALSE(t.add_eos);
  EXPECT_EQ(t.chat_template, "{{ messages }}");
}

TEST_F(GgufModelTest, SeparateClassifierAndDefaults) {
  Synthetic s;
  s.with_output = true;
  s.with_tokenizer = false;
  s.arch = "mistral";
  auto src = load(s);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_FALSE(src->config.shared_classifier);
  EXPECT_EQ((*find_tensor(*src, "classifier"))->shape, (std::vector<int64_t>{8, 16}));
  EXPECT_FALSE(src->has_tokenizer);
  EXPECT_EQ(src->rope_layout, RopeLayout::kInterleaved);
}

TEST_F(GgufModelTest, QwenFilesRotateHalfAndCarryBiasesAndNorms) {
  Synthetic s;
  s.arch = "qwen2";
  s.with_biases = true;
  s.with_tokenizer = false;
  s.extra_keys = [](GgufWriter& w) {  // byte-level BPE, as Qwen ships it
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", "qwen2");
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c", "ab", "abc", "\xC4\xA0", "<|im_start|>", "<|im_end|>"});
    w.add_string_array("tokenizer.ggml.merges", {"a b", "ab c"});
    w.add_u32("tokenizer.ggml.eos_token_id", 7);
  };
  auto q2 = load(s);
  ASSERT_TRUE(q2.ok()) << q2.status().to_string();
  EXPECT_EQ(q2->rope_layout, RopeLayout::kRotateHalf);
  ASSERT_TRUE(q2->has_tokenizer);
  EXPECT_EQ(q2->tokenizer.model, "gpt2");
  EXPECT_EQ(q2->tokenizer.pre, "qwen2");
  EXPECT_EQ(q2->tokenizer.merges, (std::vector<std::string>{"a b", "ab c"}));
  EXPECT_TRUE(q2->tokenizer.scores.empty());
  EXPECT_EQ(q2->tokenizer.eos, 7);
  EXPECT_EQ(q2->tokenizer.bos, -1);  // not stated, and a BPE vocabulary has no default
  EXPECT_FALSE(q2->tokenizer.add_bos);  // llama.cpp adds BOS by default only for Llama 3 style BPE
  EXPECT_EQ((*find_tensor(*q2, "layers.1.bk"))->shape, (std::vector<int64_t>{8}));
  EXPECT_EQ((*find_tensor(*q2, "layers.0.bq"))->shape, (std::vector<int64_t>{16}));

  Synthetic s3;
  s3.arch = "qwen3";
  s3.with_qk_norms = true;
  auto q3 = load(s3);
  ASSERT_TRUE(q3.ok()) << q3.status().to_string();
  EXPECT_EQ(q3->rope_layout, RopeLayout::kRotateHalf);
  EXPECT_EQ((*find_tensor(*q3, "layers.1.k_norm"))->shape, (std::vector<int64_t>{4}));
}

TEST_F(GgufModelTest, MissingPiecesAreNamed) {
  Synthetic no_up;
  no_up.skip = {"blk.1.ffn_up.weight"};
  auto a = load(no_up);
  EXPECT_EQ(a.status().code(), StatusCode::kNotFound);
  EXPECT_NE(a.status().message().find("blk.1.ffn_up.weight"), std::string::npos) << a.status().message();

  Synthetic no_embd;
  no_embd.skip = {"token_embd.weight"};
  EXPECT_NE(load(no_embd).status().message().find("no tensor token_embd.weight"), std::string::npos);

  // A file with an architecture and nothing else.
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  ASSERT_TRUE(w.write(path_).ok());
  auto b = load_gguf_source(path_);
  EXPECT_EQ(b.status().code(), StatusCode::kNotFound);
  EXPECT_NE(b.status().message().find("llama.embedding_length is absent"), std::string::npos);

  auto missing = load_gguf_source(dir_.file("absent.gguf"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST_F(GgufModelTest, UnsupportedArchitecturesAndHeadShapes) {
  Synthetic phi;
  phi.arch = "phi3";
  auto a = load(phi);
  EXPECT_EQ(a.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(a.status().message().find("architecture phi3 is not supported"), std::string::npos);

  // Qwen3-0.6B style heads wider than dim / n_heads are the model's shape:
  // here the tensors are still 4 wide, so they disagree with it.
  Synthetic wide_heads;
  wide_heads.arch = "qwen3";
  wide_heads.extra_keys = [](GgufWriter& w) { w.add_u32("qwen3.attention.key_length", 8); };
  auto b = load(wide_heads);
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("tensor layers.0.wq has shape [16, 16]"), std::string::npos)
      << b.status().message();

  Synthetic narrow_values;  // keys and values of different widths
  narrow_values.extra_keys = [](GgufWriter& w) { w.add_u32("llama.attention.value_length", 2); };
  auto c = load(narrow_values);
  EXPECT_EQ(c.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(c.status().message().find("llama.attention.value_length = 2 differs"), std::string::npos)
      << c.status().message();

  Synthetic output_bias;  // a bias the model would not add
  output_bias.extra_tensors = [](GgufWriter& w, std::deque<std::vector<float>>& buffers) {
    auto& bias = buffers.emplace_back(static_cast<size_t>(Synthetic::kDim), 0.5f);
    w.add_tensor("blk.1.attn_output.bias", GgmlType::kF32, {Synthetic::kDim},
                 {reinterpret_cast<const uint8_t*>(bias.data()), bias.size() * 4});
  };
  auto e = load(output_bias);
  EXPECT_EQ(e.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(e.status().message().find("blk.1.attn_output.bias is a bias"), std::string::npos)
      << e.status().message();

  Synthetic partial_rope;  // RoPE over part of each head (phi-style)
  partial_rope.extra_keys = [](GgufWriter& w) { w.add_u32("llama.rope.dimension_count", 2); };
  auto d = load(partial_rope);
  EXPECT_EQ(d.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(d.status().message().find("rotate all of each head"), std::string::npos) << d.status().message();
}

TEST_F(GgufModelTest, InconsistentVocabularies) {
  Synthetic stated;
  stated.extra_keys = [](GgufWriter& w) { w.add_u32("llama.vocab_size", 9); };
  auto a = load(stated);
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("llama.vocab_size = 9"), std::string::npos);

  Synthetic bad_scores;
  bad_scores.with_tokenizer = false;
  bad_scores.extra_keys = [](GgufWriter& w) {
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b"});
  };
  auto b = load(bad_scores);
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("the tokenizer has 2 tokens but token_embd.weight has 8 rows"),
            std::string::npos);
}

TEST_F(GgufModelTest, TokenizerArraysOfTheWrongLength) {
  Synthetic s;
  s.with_tokenizer = false;
  s.extra_keys = [](GgufWriter& w) {
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c", "d", "e", "f", "g", "h"});
    const float scores[] = {0, -1, -2};
    w.add_f32_array("tokenizer.ggml.scores", scores);
  };
  auto a = load(s);
  EXPECT_EQ(a.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(a.status().message().find("tokenizer.ggml.scores has 3 entries for 8 tokens"), std::string::npos)
      << a.status().message();
}

TEST_F(GgufModelTest, LayerIndexBeyondBlockCount) {
  Synthetic s;
  s.extra_tensors = [](GgufWriter& w, std::deque<std::vector<float>>& buffers) {
    auto& b = buffers.emplace_back(16);
    w.add_tensor("blk.7.attn_norm.weight", GgmlType::kF32, {16},
                 {reinterpret_cast<const uint8_t*>(b.data()), 64});
  };
  auto a = load(s);
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("blk.7.attn_norm.weight belongs to layer 7 but block_count is 2"),
            std::string::npos);
}

// Block numbers are digits without a sign or leading zeros: "-1" or "01"
// would alias (or invent) a layer, and the first of two aliases would
// silently shadow the real tensor. Such names are not block tensors.
TEST_F(GgufModelTest, BlockNumbersWithASignOrLeadingZerosAreNotLayers) {
  Synthetic s;
  s.extra_tensors = [](GgufWriter& w, std::deque<std::vector<float>>& buffers) {
    for (const char* name : {"blk.-1.attn_norm.weight", "blk.+1.attn_norm.weight", "blk.01.attn_norm.weight"}) {
      auto& b = buffers.emplace_back(16, 9.0f);
      w.add_tensor(name, GgmlType::kF32, {16}, {reinterpret_cast<const uint8_t*>(b.data()), 64});
    }
  };
  auto src = load(s);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  for (const auto& [name, tensor] : src->tensors) {
    EXPECT_EQ(name.find("layers.-"), std::string::npos) << name;
    if (name == "layers.1.attn_norm") {
      float first = 0;
      std::memcpy(&first, tensor.data, 4);
      EXPECT_NE(first, 9.0f) << "layer 1's norm came from an alias";
    }
  }
}

// The bundled stories260K, carried from its llama2.c checkpoint into GGUF the
// way llama.cpp lays a llama model out (ne innermost first, tensor names),
// loads back with the config and the exact bytes llama2.c's own loader sees.
TEST_F(GgufModelTest, BundledModelThroughGgufMatchesTheLlama2cLoader) {
  auto w = load_llama2c(testing::bundled_checkpoint());
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  const LlamaConfig& c = w->config;
  GgufWriter out;
  out.add_string("general.architecture", "llama");
  out.add_u32("llama.embedding_length", static_cast<uint32_t>(c.dim));
  out.add_u32("llama.feed_forward_length", static_cast<uint32_t>(c.hidden_dim));
  out.add_u32("llama.block_count", static_cast<uint32_t>(c.n_layers));
  out.add_u32("llama.attention.head_count", static_cast<uint32_t>(c.n_heads));
  out.add_u32("llama.attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  out.add_u32("llama.context_length", static_cast<uint32_t>(c.max_seq_len));
  out.add_u32("llama.rope.dimension_count", static_cast<uint32_t>(c.head_dim()));
  std::map<std::string, const Tensor*> expected;  // canonical name -> llama2.c's tensor
  auto add = [&](const std::string& gguf_name, const std::string& canonical, const Tensor& t) {
    std::vector<int64_t> ne(t.shape.begin(), t.shape.begin() + t.rank);
    std::reverse(ne.begin(), ne.end());
    out.add_tensor(gguf_name, GgmlType::kF32, ne, {static_cast<const uint8_t*>(t.data), t.bytes()});
    expected[canonical] = &t;
  };
  add("token_embd.weight", "embedding", w->embedding);
  add("output_norm.weight", "final_norm", w->final_norm);
  const std::pair<const char*, Tensor LlamaLayerWeights::*> parts[] = {
      {"attn_norm", &LlamaLayerWeights::attn_norm}, {"attn_q", &LlamaLayerWeights::wq},
      {"attn_k", &LlamaLayerWeights::wk},           {"attn_v", &LlamaLayerWeights::wv},
      {"attn_output", &LlamaLayerWeights::wo},      {"ffn_norm", &LlamaLayerWeights::ffn_norm},
      {"ffn_gate", &LlamaLayerWeights::w_gate},     {"ffn_down", &LlamaLayerWeights::w_down},
      {"ffn_up", &LlamaLayerWeights::w_up}};
  const char* canonical_parts[] = {"attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_down", "w_up"};
  for (size_t l = 0; l < w->layers.size(); ++l)
    for (size_t i = 0; i < std::size(parts); ++i)
      add("blk." + std::to_string(l) + "." + parts[i].first + ".weight",
          "layers." + std::to_string(l) + "." + canonical_parts[i], w->layers[l].*parts[i].second);
  ASSERT_TRUE(out.write(path_).ok());

  auto src = load_gguf_source(path_);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_EQ(src->config.dim, 64);
  EXPECT_EQ(src->config.hidden_dim, 172);
  EXPECT_EQ(src->config.n_layers, 5);
  EXPECT_EQ(src->config.n_heads, 8);
  EXPECT_EQ(src->config.n_kv_heads, 4);
  EXPECT_EQ(src->config.vocab_size, 512);
  EXPECT_EQ(src->config.max_seq_len, 512);
  EXPECT_TRUE(src->config.shared_classifier);
  EXPECT_EQ(src->tensors.size(), expected.size());
  for (const auto& [name, t] : expected) {
    auto got = find_tensor(*src, name);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ((*got)->shape, std::vector<int64_t>(t->shape.begin(), t->shape.begin() + t->rank)) << name;
    ASSERT_EQ((*got)->bytes, t->bytes()) << name;
    EXPECT_EQ(std::memcmp((*got)->data, t->data, t->bytes()), 0) << name;
  }
}

}  // namespace
}  // namespace tandem
