// The llama2.c weight slicer, checked against the loader: every slice's bytes
// are the tensor elements the plan says (read through load_llama2c's tensor
// views, an independent walk of the layout), and all ranks' slices together
// cover every weight byte as many times as it is replicated and nothing else
// (header and RoPE tables: never), against the loader's file size.
#include "sharding/weight_slices.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/llama2c_loader.h"
#include "tests/unit/shard_test_shapes.h"
#include "tests/unit/test_paths.h"

namespace tandem::sharding {
namespace {

using test_shapes::gqa_8_2;
using testing::TempDir;

// A llama2.c file whose float number i holds the bit pattern i, so any
// misplaced byte range shows.
std::string write_checkpoint(const TempDir& dir, const LlamaConfig& c) {
  const uint64_t bytes = *llama2c_expected_bytes(c, "test");
  std::string file(bytes, '\0');
  const int32_t header[7] = {
      static_cast<int32_t>(c.dim),      static_cast<int32_t>(c.hidden_dim),
      static_cast<int32_t>(c.n_layers), static_cast<int32_t>(c.n_heads),
      static_cast<int32_t>(c.n_kv_heads),
      static_cast<int32_t>(c.shared_classifier ? c.vocab_size : -c.vocab_size),
      static_cast<int32_t>(c.max_seq_len)};
  std::memcpy(file.data(), header, sizeof(header));
  for (uint64_t i = 0; (kLlama2cHeaderBytes + 4 * i) < bytes; ++i) {
    const uint32_t v = static_cast<uint32_t>(i);
    std::memcpy(file.data() + kLlama2cHeaderBytes + 4 * i, &v, 4);
  }
  const std::string path = dir.file("model.bin");
  testing::write_file(path, file);
  return path;
}

// The loader's tensors by the slicer's names, with how many ranks of a plan
// must hold each (the rules in shard_plan.h, restated).
struct Expected {
  const Tensor* tensor;
  int copies;
};
std::map<std::string, Expected> tensors_by_name(const LlamaWeights& w, const ShardPlan& p) {
  const int norms = p.tp;
  const int kv = p.tp > w.config.n_kv_heads ? static_cast<int>(p.tp / w.config.n_kv_heads) : 1;
  std::map<std::string, Expected> m;
  m["embedding"] = {&w.embedding, w.config.shared_classifier && p.pp > 1 ? 2 : 1};
  // A shared classifier is the embedding's bytes, counted there (copies 0 here).
  m["classifier"] = {&w.classifier, w.config.shared_classifier ? 0 : 1};
  m["final_norm"] = {&w.final_norm, norms};
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LlamaLayerWeights& t = w.layers[l];
    const std::string n = "layers." + std::to_string(l) + ".";
    m[n + "attn_norm"] = {&t.attn_norm, norms};
    m[n + "wq"] = {&t.wq, 1};
    m[n + "wk"] = {&t.wk, kv};
    m[n + "wv"] = {&t.wv, kv};
    m[n + "wo"] = {&t.wo, 1};
    m[n + "ffn_norm"] = {&t.ffn_norm, norms};
    m[n + "w1"] = {&t.w_gate, 1};
    m[n + "w2"] = {&t.w_down, 1};
    m[n + "w3"] = {&t.w_up, 1};
  }
  return m;
}

void check_plan_against_file(const std::string& path, int tp, int pp) {
  SCOPED_TRACE("tp=" + std::to_string(tp) + " pp=" + std::to_string(pp));
  Result<LlamaWeights> loaded = load_llama2c(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const LlamaWeights& w = *loaded;
  const std::string file = testing::read_file(path);
  ASSERT_EQ(file.size(), *llama2c_expected_bytes(w.config, "test"));
  const char* base = static_cast<const char*>(w.embedding.data) - kLlama2cHeaderBytes;
  ASSERT_EQ(std::memcmp(base, file.data(), 64), 0);  // the header: base is the file's start

  Result<ShardPlan> plan = make_shard_plan(w.config, tp, pp, {});
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  const auto names = tensors_by_name(w, *plan);
  std::vector<uint8_t> count(file.size(), 0);
  for (const RankShard& rank : plan->ranks) {
    Result<std::vector<WeightSlice>> slices = llama2c_weight_slices(*plan, rank.rank);
    ASSERT_TRUE(slices.ok()) << slices.status().to_string();
    uint64_t total = 0, last_offset = 0;
    for (const WeightSlice& s : *slices) {
      SCOPED_TRACE("rank " + std::to_string(rank.rank) + " " + s.tensor);
      auto it = names.find(s.tensor);
      ASSERT_NE(it, names.end());
      const Tensor& t = *it->second.tensor;
      EXPECT_EQ(s.tensor_rows, t.rows());
      EXPECT_EQ(s.tensor_cols, t.row_length());
      EXPECT_EQ(s.rows, static_cast<uint64_t>(s.row_range.size()));
      EXPECT_EQ(s.bytes_per_row, static_cast<uint64_t>(s.col_range.size()) * 4);
      EXPECT_EQ(s.row_stride, static_cast<uint64_t>(t.row_length()) * 4);
      EXPECT_GE(s.offset, last_offset);  // file order
      last_offset = s.offset;
      ASSERT_LE(s.offset + (s.rows - 1) * s.row_stride + s.bytes_per_row, file.size());
      const char* tensor_bytes = static_cast<const char*>(t.data);
      for (uint64_t r = 0; r < s.rows; ++r) {
        const uint64_t at = s.offset + r * s.row_stride;
        const uint64_t want = ((s.row_range.begin + r) * t.row_length() + s.col_range.begin) * 4;
        ASSERT_EQ(std::memcmp(base + at, tensor_bytes + want, s.bytes_per_row), 0) << "row " << r;
        for (uint64_t b = 0; b < s.bytes_per_row; ++b) ++count[at + b];
      }
      total += s.bytes();
    }
    EXPECT_EQ(total, rank.weight_bytes) << "rank " << rank.rank;
  }
  // Every tensor byte held exactly `copies` times; everything else never.
  std::vector<uint8_t> want(file.size(), 0);
  uint64_t tensor_bytes = 0;
  for (const auto& [name, e] : names) {
    if (e.copies == 0) continue;
    const uint64_t at = static_cast<const char*>(e.tensor->data) - base;
    for (uint64_t b = 0; b < e.tensor->bytes(); ++b) want[at + b] = static_cast<uint8_t>(e.copies);
    tensor_bytes += e.tensor->bytes();
  }
  uint64_t wrong = 0;
  for (size_t i = 0; i < file.size(); ++i) wrong += count[i] != want[i];
  EXPECT_EQ(wrong, 0u) << "bytes held the wrong number of times";
  // The weights plus what no rank reads are the whole file, by the loader's count.
  Result<std::vector<FileRange>> unread = llama2c_unread_ranges(w.config);
  ASSERT_TRUE(unread.ok());
  uint64_t unread_bytes = 0;
  for (const FileRange& r : *unread) {
    for (uint64_t b = 0; b < r.length; ++b) EXPECT_EQ(want[r.offset + b], 0) << r.what;
    unread_bytes += r.length;
  }
  EXPECT_EQ(tensor_bytes + unread_bytes, file.size());
  EXPECT_EQ(tensor_bytes, plan->total_weight_bytes);
}

TEST(WeightSlices, BundledModelEverySplit) {
  using Split = std::pair<int, int>;
  const std::vector<Split> splits = {{1, 1}, {2, 1}, {1, 2}, {4, 1}, {8, 1}, {2, 2}, {1, 5}, {8, 3}};
  for (auto [tp, pp] : splits)
    check_plan_against_file(testing::bundled_checkpoint(), tp, pp);
}

TEST(WeightSlices, GqaShapesSharedAndSeparateClassifier) {
  for (bool shared : {true, false}) {
    TempDir dir;
    const std::string path = write_checkpoint(dir, gqa_8_2(shared));
    using Split = std::pair<int, int>;
    for (auto [tp, pp] : std::vector<Split>{{1, 1}, {2, 1}, {4, 1}, {8, 1}, {2, 2}, {4, 2}, {1, 4}})
      check_plan_against_file(path, tp, pp);
  }
}

// One strided slice by hand: rank 1 of tp=2 on stories260K, layer 0's wo.
TEST(WeightSlices, WoColumnsAreStrided) {
  Result<LlamaWeights> w = load_llama2c(testing::bundled_checkpoint());
  ASSERT_TRUE(w.ok());
  Result<ShardPlan> plan = make_shard_plan(w->config, 2, 1, {});
  ASSERT_TRUE(plan.ok());
  Result<std::vector<WeightSlice>> slices = llama2c_weight_slices(*plan, 1);
  ASSERT_TRUE(slices.ok());
  const WeightSlice* wo = nullptr;
  const WeightSlice* wq = nullptr;
  for (const WeightSlice& s : *slices) {
    if (s.tensor == "layers.0.wo") wo = &s;
    if (s.tensor == "layers.0.wq") wq = &s;
  }
  ASSERT_TRUE(wo && wq);
  // header 28 + embedding 131072 + attn_norm 5*256 + wq 5*16384 + wk, wv
  // 5*8192 each, then columns 32.. of 64: 128 bytes in.
  EXPECT_EQ(wo->offset, 28u + 131072 + 1280 + 81920 + 40960 + 40960 + 128);
  EXPECT_EQ(wo->rows, 64u);
  EXPECT_EQ(wo->row_stride, 256u);
  EXPECT_EQ(wo->bytes_per_row, 128u);
  EXPECT_FALSE(wo->contiguous());
  // wq rows 32..63 of layer 0: one run after the embedding and the norms.
  EXPECT_EQ(wq->offset, 28u + 131072 + 1280 + 32 * 256);
  EXPECT_TRUE(wq->contiguous());
  EXPECT_EQ(wq->bytes(), 32u * 256);
  // 1 embedding + 5 layers * 9 tensors + final_norm.
  EXPECT_EQ(slices->size(), 47u);
}

TEST(WeightSlices, Llama405bTp2) {
  const LlamaConfig c = test_shapes::llama31_405b();
  Result<ShardPlan> plan = make_shard_plan(c, 2, 1, {});
  ASSERT_TRUE(plan.ok());
  const uint64_t file = *llama2c_expected_bytes(c, "test");
  uint64_t both = 0;
  for (int r = 0; r < 2; ++r) {
    Result<std::vector<WeightSlice>> slices = llama2c_weight_slices(*plan, r);
    ASSERT_TRUE(slices.ok());
    uint64_t total = 0;
    for (const WeightSlice& s : *slices) {
      ASSERT_LE(s.offset + (s.rows - 1) * s.row_stride + s.bytes_per_row, file) << s.tensor;
      total += s.bytes();
    }
    EXPECT_EQ(slices->size(), 1u + 126 * 9 + 2);  // embedding, layers, final_norm, classifier
    EXPECT_EQ(total, plan->ranks[r].weight_bytes);
    both += total;
  }
  EXPECT_EQ(both, plan->total_weight_bytes + (2u * 126 + 1) * 16384 * 4);
}

TEST(WeightSlices, RefusesWhatItCannotSlice) {
  Result<ShardPlan> plan = make_shard_plan(gqa_8_2(true), 2, 1, {});
  ASSERT_TRUE(plan.ok());
  for (int rank : {-1, 2}) {
    Result<std::vector<WeightSlice>> s = llama2c_weight_slices(*plan, rank);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find("is not in the plan's 2 ranks"), std::string::npos);
  }
  ShardPlan tampered = *plan;
  tampered.ranks[1].vocab.end = 1002;
  Result<std::vector<WeightSlice>> s = llama2c_weight_slices(tampered, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("vocab rows [501, 1002) is outside [0, 1001)"),
            std::string::npos)
      << s.status().to_string();
  EXPECT_TRUE(llama2c_weight_slices(tampered, 0).ok());

  LlamaConfig q8 = gqa_8_2(true);
  q8.hidden_dim = 256;
  Result<ShardPlan> quantized = make_shard_plan(q8, 2, 1, {}, DType::kQ8_0);
  ASSERT_TRUE(quantized.ok()) << quantized.status().to_string();
  s = llama2c_weight_slices(*quantized, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("llama2.c checkpoints store f32"), std::string::npos);
}

}  // namespace
}  // namespace tandem::sharding
