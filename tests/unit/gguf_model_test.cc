// GGUF files -> ModelSource: synthetic llama/qwen files written with
// GgufWriter load with the config their keys state, canonical names, shapes
// flipped to outermost first, data viewed in place, and the tokenizer spec;
// missing or inconsistent pieces give errors naming them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <numbers>
#include <set>
#include <vector>

#include "runtime/formats/gguf_model.h"
#include "runtime/formats/gguf_writer.h"
#include "runtime/llama2c_loader.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

using gguf::GgmlType;

// dim 16, 4 heads of 4, 2 KV heads, hidden 32, 2 layers, vocab 8.
struct Synthetic {
  std::string arch = "llama";
  float theta = 500000.0f;
  bool with_output = false;
  bool with_biases = false;
  bool with_qk_norms = false;
  bool with_tokenizer = true;
  std::set<std::string> skip;  // GGUF tensor names left out
  std::function<void(GgufWriter&)> extra_keys;
  std::function<void(GgufWriter&, std::deque<std::vector<float>>&)> extra_tensors;

  static constexpr int64_t kDim = 16, kHidden = 32, kLayers = 2, kHeads = 4, kKvHeads = 2, kVocab = 8;
  static constexpr int64_t kKvDim = kKvHeads * (kDim / kHeads);

  // GGUF name -> the floats written for it, for comparing with the views.
  std::map<std::string, std::vector<float>> written;

  Status write(const std::string& path) {
    GgufWriter w;
    w.add_string("general.architecture", arch);
    w.add_u32(arch + ".embedding_length", kDim);
    w.add_u32(arch + ".feed_forward_length", kHidden);
    w.add_u32(arch + ".block_count", kLayers);
    w.add_u32(arch + ".attention.head_count", kHeads);
    w.add_u32(arch + ".attention.head_count_kv", kKvHeads);
    w.add_u32(arch + ".context_length", 128);
    w.add_f32(arch + ".rope.freq_base", theta);
    w.add_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-6f);
    if (with_tokenizer) {
      w.add_string("tokenizer.ggml.model", "llama");
      w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab"});
      const float scores[] = {0, 0, 0, -1, -2, -3, -4, -5};
      w.add_f32_array("tokenizer.ggml.scores", scores);
      const int32_t types[] = {2, 3, 3, 1, 1, 1, 1, 1};
      w.add_i32_array("tokenizer.ggml.token_type", types);
      w.add_u32("tokenizer.ggml.bos_token_id", 1);
      w.add_u32("tokenizer.ggml.eos_token_id", 2);
      w.add_u32("tokenizer.ggml.padding_token_id", 100);  // past the vocabulary: dropped
      w.add_bool("tokenizer.ggml.add_bos_token", true);
      w.add_string("tokenizer.chat_template", "{{ messages }}");
    }
    if (extra_keys) extra_keys(w);

    std::deque<std::vector<float>> buffers;  // stable addresses until write()
    auto add = [&](const std::string& name, std::vector<int64_t> ne) {
      if (skip.count(name)) return;
      int64_t n = 1;
      for (const int64_t d : ne) n *= d;
      std::vector<float>& b = buffers.emplace_back(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) b[i] = static_cast<float>(written.size() * 1000 + i) * 0.001f;
      written[name] = b;
      w.add_tensor(name, GgmlType::kF32, std::move(ne),
                   {reinterpret_cast<const uint8_t*>(b.data()), b.size() * sizeof(float)});
    };
    add("token_embd.weight", {kDim, kVocab});
    add("output_norm.weight", {kDim});
    if (with_output) add("output.weight", {kDim, kVocab});
    for (int l = 0; l < kLayers; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      add(p + "attn_norm.weight", {kDim});
      add(p + "attn_q.weight", {kDim, kDim});
      add(p + "attn_k.weight", {kDim, kKvDim});
      add(p + "attn_v.weight", {kDim, kKvDim});
      add(p + "attn_output.weight", {kDim, kDim});
      add(p + "ffn_norm.weight", {kDim});
      add(p + "ffn_gate.weight", {kDim, kHidden});
      add(p + "ffn_down.weight", {kHidden, kDim});
      add(p + "ffn_up.weight", {kDim, kHidden});
      if (with_biases) {
        add(p + "attn_q.bias", {kDim});
        add(p + "attn_k.bias", {kKvDim});
        add(p + "attn_v.bias", {kKvDim});
      }
      if (with_qk_norms) {
        add(p + "attn_q_norm.weight", {kDim / kHeads});
        add(p + "attn_k_norm.weight", {kDim / kHeads});
      }
    }
    if (extra_tensors) extra_tensors(w, buffers);
    return w.write(path);
  }
};

class GgufModelTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  std::string path_ = dir_.file("model.gguf");

  Result<ModelSource> load(Synthetic& s) {
    Status written = s.write(path_);
    EXPECT_TRUE(written.ok()) << written.to_string();
    auto source = load_gguf_source(path_);
    if (!source.ok()) {
      EXPECT_EQ(source.status().message().rfind(path_ + ": ", 0), 0u) << source.status().message();
    }
    return source;
  }
};

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
  EXPECT_EQ(src->rope_scaling.factor, 0.0f);
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

  Synthetic wide_heads;  // Qwen3-0.6B style: heads wider than dim / n_heads
  wide_heads.arch = "qwen3";
  wide_heads.extra_keys = [](GgufWriter& w) { w.add_u32("qwen3.attention.key_length", 8); };
  auto b = load(wide_heads);
  EXPECT_EQ(b.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(b.status().message().find("qwen3.attention.key_length = 8 differs"), std::string::npos)
      << b.status().message();
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

// Llama 3's scaling of rotary frequency `freq`, written from Meta's
// reference (llama3 apply_scaling): wavelengths shorter than
// original/high_freq_factor keep their frequency, longer than
// original/low_freq_factor are divided by the factor, and between them the
// frequency is a blend of the two. Returned as the divisor
// freq / scaled_freq, the form llama.cpp's rope_freqs.weight stores.
double reference_divisor(double freq, double factor, double low, double high, double original) {
  const double wavelen = 2 * std::numbers::pi / freq;
  if (wavelen < original / high) return 1.0;
  if (wavelen > original / low) return factor;
  const double smooth = (original / wavelen - low) / (high - low);
  const double scaled = (1 - smooth) * freq / factor + smooth * freq;
  return freq / scaled;
}

// rope_freqs.weight for head_dim 4: the divisors of its two frequencies,
// 1 and theta^(-1/2).
std::vector<float> table(double theta, double factor, double low, double high, double original) {
  std::vector<float> t;
  for (int i = 0; i < 2; ++i)
    t.push_back(static_cast<float>(reference_divisor(std::pow(theta, -2.0 * i / 4), factor, low, high, original)));
  return t;
}

Synthetic with_table(std::vector<float> values, float theta) {
  Synthetic s;
  s.theta = theta;
  s.extra_tensors = [values](GgufWriter& w, std::deque<std::vector<float>>& buffers) {
    auto& b = buffers.emplace_back(values);
    w.add_tensor("rope_freqs.weight", GgmlType::kF32, {2},
                 {reinterpret_cast<const uint8_t*>(b.data()), b.size() * 4});
  };
  return s;
}

TEST_F(GgufModelTest, Llama3ScalingFromMetadataOrTable) {
  Synthetic meta;
  meta.extra_keys = [](GgufWriter& w) {
    w.add_string("llama.rope.scaling.type", "llama3");
    w.add_f32("llama.rope.scaling.factor", 8.0f);
    w.add_f32("llama.rope.scaling.low_freq_factor", 1.0f);
    w.add_f32("llama.rope.scaling.high_freq_factor", 4.0f);
    w.add_u32("llama.rope.scaling.original_context_length", 8192);
  };
  auto a = load(meta);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->rope_scaling.factor, 8.0f);
  EXPECT_EQ(a->rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(a->rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(a->rope_scaling.original_context, 8192);

  // llama.cpp's form, only the table. theta 1e7: wavelengths 6.3 and
  // 19869, one below 8192/4 and one above 8192/1, so the table is {1, factor}.
  const std::vector<float> plain = table(1e7, 8.0, 1.0, 4.0, 8192.0);
  ASSERT_EQ(plain, (std::vector<float>{1.0f, 8.0f}));
  Synthetic only_table = with_table(plain, 1e7f);
  auto b = load(only_table);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(b->rope_scaling.factor, 8.0f);
  EXPECT_EQ(b->rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(b->rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(b->rope_scaling.original_context, 8192);

  // theta 500000: wavelengths 6.3 and 4443, the second between the
  // thresholds, so its divisor is a blend; with the factor stated in the
  // metadata the table is checked against it.
  const std::vector<float> blended = table(500000.0, 32.0, 1.0, 4.0, 8192.0);
  ASSERT_GT(blended[1], 1.0f);
  ASSERT_LT(blended[1], 32.0f);
  Synthetic both = with_table(blended, 500000.0f);
  both.extra_keys = [](GgufWriter& w) {
    w.add_string("llama.rope.scaling.type", "llama3");
    w.add_f32("llama.rope.scaling.factor", 32.0f);
  };
  auto c = load(both);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->rope_scaling.factor, 32.0f);
  EXPECT_EQ(c->rope_scaling.original_context, 8192);

  Synthetic ones = with_table({1.0f, 1.0f}, 500000.0f);
  auto d = load(ones);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->rope_scaling.factor, 0.0f);

  // Factor 3 (the largest entry) would put 1.9 at the second frequency, not 3.
  Synthetic other = with_table({1.0f, 3.0f}, 500000.0f);
  auto e = load(other);
  EXPECT_EQ(e.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(e.status().message().find("rope_freqs.weight[1] = 3.0"), std::string::npos) << e.status().message();

  Synthetic yarn;
  yarn.extra_keys = [](GgufWriter& w) { w.add_string("llama.rope.scaling.type", "yarn"); };
  EXPECT_EQ(load(yarn).status().code(), StatusCode::kUnimplemented);
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
