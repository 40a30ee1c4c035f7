// A small synthetic Llama-family GGUF model written with GgufWriter, and a
// fixture that writes one and loads it back as a ModelSource, for the GGUF
// model tests (gguf_model_test.cc, gguf_rope_test.cc).
#pragma once

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/formats/gguf_model.h"
#include "runtime/formats/gguf_writer.h"
#include "tests/unit/test_paths.h"

namespace tandem::testing {

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
  TempDir dir_;
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

}  // namespace tandem::testing
