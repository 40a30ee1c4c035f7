// The shard loader against load_llama2c as the independent reference: every
// local tensor holds exactly the rows and columns of the full model's tensor
// that the plan's ranges name, element by element; a rank holds its plan's
// weight_bytes; contiguous slices are views into the file's mapping (checked
// in /proc/self/maps) and strided ones aligned copies; bad files fail exactly
// as load_llama2c fails.
#include "sharding/shard_loader.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "runtime/llama2c_loader.h"
#include "runtime/llama2c_writer.h"
#include "runtime/synthetic.h"
#include "sharding/weight_slices.h"
#include "tests/unit/shard_test_shapes.h"
#include "tests/unit/test_paths.h"

namespace tandem::sharding {
namespace {

using test_shapes::gqa_8_2;
using testing::TempDir;

std::string write_synthetic(const TempDir& dir, const LlamaConfig& c) {
  Result<LlamaWeights> w = make_synthetic_weights(c, 17);
  EXPECT_TRUE(w.ok()) << w.status().to_string();
  const std::string path = dir.file("model.bin");
  EXPECT_TRUE(write_llama2c(*w, path).ok());
  return path;
}

// The address ranges at which `path` is mapped into this process.
std::vector<std::pair<uintptr_t, uintptr_t>> mappings_of(const std::string& path) {
  const std::string want = std::filesystem::canonical(path).string();
  std::vector<std::pair<uintptr_t, uintptr_t>> out;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, name;
    in >> range >> perms >> offset >> dev >> inode >> name;
    if (name != want) continue;
    const size_t dash = range.find('-');
    out.emplace_back(std::stoull(range.substr(0, dash), nullptr, 16),
                     std::stoull(range.substr(dash + 1), nullptr, 16));
  }
  return out;
}

// local[i][j] == full[rows.begin + i][cols.begin + j], as bits; a norm is one row.
void expect_part(const Tensor& local, const Tensor& full, IndexRange rows, IndexRange cols,
                 const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_NE(local.data, nullptr);
  ASSERT_EQ(local.rank, full.rank);
  ASSERT_EQ(local.rows(), rows.size());
  ASSERT_EQ(local.row_length(), cols.size());
  const float* l = local.f32();
  const float* f = full.f32();
  int64_t wrong = 0;
  for (int64_t i = 0; i < rows.size(); ++i)
    for (int64_t j = 0; j < cols.size(); ++j)
      wrong += std::memcmp(&l[i * cols.size() + j],
                           &f[(rows.begin + i) * full.row_length() + cols.begin + j], 4) != 0;
  EXPECT_EQ(wrong, 0) << "elements differ from the full model's";
}

// The loaded tensor each slice fills, by the slicer's names (restated here,
// not taken from the loader).
const Tensor* tensor_named(const LlamaWeights& w, const std::string& name) {
  if (name == "embedding") return &w.embedding;
  if (name == "classifier") return &w.classifier;
  if (name == "final_norm") return &w.final_norm;
  const size_t dot = name.find('.', 7);
  const LlamaLayerWeights& l = w.layers[std::stoll(name.substr(7, dot - 7)) - w.shard.first_layer];
  const std::string kind = name.substr(dot + 1);
  if (kind == "attn_norm") return &l.attn_norm;
  if (kind == "ffn_norm") return &l.ffn_norm;
  if (kind == "wq") return &l.wq;
  if (kind == "wk") return &l.wk;
  if (kind == "wv") return &l.wv;
  if (kind == "wo") return &l.wo;
  if (kind == "w1") return &l.w_gate;
  if (kind == "w2") return &l.w_down;
  return &l.w_up;
}

// Loads rank `rank` and checks it against `full`; returns what it held.
ShardLoadReport check_rank(const std::string& path, const ShardPlan& plan, int rank,
                           const LlamaWeights& full) {
  SCOPED_TRACE("rank " + std::to_string(rank));
  ShardLoadReport report;
  Result<LlamaWeights> loaded = load_llama2c_shard(path, plan, rank, &report);
  EXPECT_TRUE(loaded.ok()) << loaded.status().to_string();
  if (!loaded.ok()) return report;
  const LlamaWeights& w = *loaded;
  const RankShard& me = plan.ranks[rank];
  const LlamaConfig& m = plan.model;
  EXPECT_EQ(w.config.dim, m.dim);
  EXPECT_EQ(w.config.shared_classifier, m.shared_classifier);

  const LlamaShard& s = w.shard;
  EXPECT_EQ(s.tp, plan.tp);
  EXPECT_EQ(s.tp_rank, me.tp_rank);
  EXPECT_EQ(s.pp, plan.pp);
  EXPECT_EQ(s.stage, me.stage);
  EXPECT_EQ(s.first_layer, me.layers.begin);
  EXPECT_EQ(s.n_heads, me.q_heads.size());
  EXPECT_EQ(s.n_kv_heads, me.kv_heads.size());
  EXPECT_EQ(s.hidden_dim, me.hidden.size());
  EXPECT_EQ(s.vocab_begin, me.vocab.begin);
  EXPECT_EQ(s.vocab_end, me.vocab.end);
  EXPECT_EQ(s.has_embedding, me.holds_embedding);
  EXPECT_EQ(s.has_classifier, me.holds_classifier);

  const int64_t hd = m.head_dim();
  const IndexRange d{0, m.dim}, norm{0, 1};
  const IndexRange q{me.q_heads.begin * hd, me.q_heads.end * hd};
  const IndexRange kv{me.kv_heads.begin * hd, me.kv_heads.end * hd};
  EXPECT_EQ(static_cast<int64_t>(w.layers.size()), me.layers.size());
  for (int64_t i = 0; i < static_cast<int64_t>(w.layers.size()); ++i) {
    const LlamaLayerWeights& l = w.layers[i];
    const LlamaLayerWeights& f = full.layers[me.layers.begin + i];
    const std::string n = "layer " + std::to_string(me.layers.begin + i) + " ";
    expect_part(l.attn_norm, f.attn_norm, norm, d, n + "attn_norm");
    expect_part(l.wq, f.wq, q, d, n + "wq");
    expect_part(l.wk, f.wk, kv, d, n + "wk");
    expect_part(l.wv, f.wv, kv, d, n + "wv");
    expect_part(l.wo, f.wo, d, q, n + "wo");
    expect_part(l.ffn_norm, f.ffn_norm, norm, d, n + "ffn_norm");
    expect_part(l.w_gate, f.w_gate, me.hidden, d, n + "w_gate");
    expect_part(l.w_down, f.w_down, d, me.hidden, n + "w_down");
    expect_part(l.w_up, f.w_up, me.hidden, d, n + "w_up");
  }
  if (me.holds_embedding)
    expect_part(w.embedding, full.embedding, me.vocab, d, "embedding");
  else
    EXPECT_EQ(w.embedding.data, nullptr);
  if (me.holds_classifier) {
    expect_part(w.final_norm, full.final_norm, norm, d, "final_norm");
    expect_part(w.classifier, full.classifier, me.vocab, d, "classifier");
    if (m.shared_classifier && me.holds_embedding) {
      EXPECT_EQ(w.classifier.data, w.embedding.data);
    }
  } else {
    EXPECT_EQ(w.final_norm.data, nullptr);
    EXPECT_EQ(w.classifier.data, nullptr);
  }

  // Bytes: the plan's, split as the slices are; contiguous ones lie in the
  // file's mapping at their offsets, strided ones are aligned copies outside it.
  EXPECT_EQ(report.rank, rank);
  EXPECT_EQ(report.held_bytes(), me.weight_bytes);
  EXPECT_EQ(report.file_bytes, std::filesystem::file_size(path));
  Result<std::vector<WeightSlice>> slices = llama2c_weight_slices(plan, rank);
  EXPECT_TRUE(slices.ok());
  if (!slices.ok()) return report;
  const char* base = nullptr;
  uint64_t contiguous = 0, strided = 0;
  for (const WeightSlice& slice : *slices) {
    const char* data = static_cast<const char*>(tensor_named(w, slice.tensor)->data);
    if (slice.contiguous()) {
      if (base == nullptr) base = data - slice.offset;
      EXPECT_EQ(data, base + slice.offset) << slice.tensor << " is not a view of the mapping";
      contiguous += slice.bytes();
    } else {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % 64, 0u) << slice.tensor;
      const bool outside = data + slice.bytes() <= base || data >= base + report.file_bytes;
      EXPECT_TRUE(base == nullptr || outside) << slice.tensor << " should be a copy";
      strided += slice.bytes();
    }
  }
  EXPECT_EQ(report.mapped_bytes, contiguous);
  EXPECT_EQ(report.copied_bytes, strided);
  bool mapped = false;
  for (auto [lo, hi] : mappings_of(path))
    mapped = mapped || (reinterpret_cast<uintptr_t>(base) >= lo &&
                        reinterpret_cast<uintptr_t>(base) + report.file_bytes <= hi);
  EXPECT_TRUE(base == nullptr || mapped) << "the views do not point into a mapping of " << path;
  return report;
}

// Every rank of a tp x pp plan of the file at `path`; returns each rank's report.
std::vector<ShardLoadReport> check_split(const std::string& path, int tp, int pp) {
  SCOPED_TRACE("tp=" + std::to_string(tp) + " pp=" + std::to_string(pp));
  Result<LlamaWeights> full = load_llama2c(path);
  EXPECT_TRUE(full.ok()) << full.status().to_string();
  Result<ShardPlan> plan = make_shard_plan(full->config, tp, pp, {});
  EXPECT_TRUE(plan.ok()) << plan.status().to_string();
  std::vector<ShardLoadReport> reports;
  for (int r = 0; r < tp * pp; ++r) reports.push_back(check_rank(path, *plan, r, *full));
  return reports;
}

TEST(ShardLoader, OneRankIsTheWholeModelMappedInPlace) {
  const std::vector<ShardLoadReport> one = check_split(testing::bundled_checkpoint(), 1, 1);
  EXPECT_EQ(one[0].copied_bytes, 0u);  // every column range is whole: nothing strided
}

TEST(ShardLoader, BundledModelTp2EachRankHoldsAboutHalf) {
  const std::string path = testing::bundled_checkpoint();
  const uint64_t whole = check_split(path, 1, 1)[0].held_bytes();
  for (const ShardLoadReport& r : check_split(path, 2, 1)) {
    EXPECT_NEAR(static_cast<double>(r.held_bytes()), whole / 2.0, whole * 0.1) << r.describe();
    EXPECT_GT(r.copied_bytes, 0u);  // wo and w2 columns
    EXPECT_EQ(r.describe().rfind("rank " + std::to_string(r.rank) + " holds 50.1% of the weights", 0), 0u)
        << r.describe();
    EXPECT_NE(r.describe().find("% of the weights (0."), std::string::npos) << r.describe();
    EXPECT_NE(r.describe().find("; file 1.06 MB)"), std::string::npos) << r.describe();
    EXPECT_NE(r.describe().find(" MB copied"), std::string::npos) << r.describe();
  }
}

TEST(ShardLoader, BundledModelPp2SplitsLayersAndCopiesTheSharedTable) {
  check_split(testing::bundled_checkpoint(), 1, 2);
}

TEST(ShardLoader, GqaKvHeadsReplicatedAtTp4) {
  TempDir dir;
  const std::string path = write_synthetic(dir, gqa_8_2(false));
  check_split(path, 4, 1);
  // Ranks 0 and 1 share KV head 0: the same rows of wk, each its own view.
  Result<ShardPlan> plan = make_shard_plan(gqa_8_2(false), 4, 1, {});
  ASSERT_TRUE(plan.ok());
  Result<LlamaWeights> a = load_llama2c_shard(path, *plan, 0);
  Result<LlamaWeights> b = load_llama2c_shard(path, *plan, 1);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->shard.n_kv_heads, 1);
  const Tensor& wk = b->layers[2].wk;
  expect_part(a->layers[2].wk, wk, {0, wk.rows()}, {0, wk.row_length()}, "replicated wk");
}

TEST(ShardLoader, GqaSharedAndSeparateClassifierEverySplit) {
  for (bool shared : {true, false}) {
    SCOPED_TRACE(shared ? "shared classifier" : "separate classifier");
    TempDir dir;
    const std::string path = write_synthetic(dir, gqa_8_2(shared));
    for (auto [tp, pp] : std::vector<std::pair<int, int>>{{2, 1}, {1, 2}, {2, 2}, {8, 1}, {1, 3}})
      check_split(path, tp, pp);
  }
}

TEST(ShardLoader, RefusesAPlanOfAnotherShape) {
  Result<ShardPlan> plan = make_shard_plan(gqa_8_2(true), 2, 1, {});
  ASSERT_TRUE(plan.ok());
  Result<LlamaWeights> w = load_llama2c_shard(testing::bundled_checkpoint(), *plan, 0);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kFailedPrecondition);
  const std::string& msg = w.status().message();
  EXPECT_NE(msg.find("(dim=64 hidden_dim=172 n_layers=5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the plan is for (dim=128 hidden_dim=250 n_layers=4"), std::string::npos) << msg;

  // The same dims with the classifier separate is another file layout.
  LlamaConfig untied = test_shapes::stories260k();
  untied.shared_classifier = false;
  w = load_llama2c_shard(testing::bundled_checkpoint(), *make_shard_plan(untied, 1, 1, {}), 0);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(w.status().message().find("separate classifier"), std::string::npos);
}

TEST(ShardLoader, RefusesARankOutsideThePlan) {
  Result<ShardPlan> plan = make_shard_plan(test_shapes::stories260k(), 2, 1, {});
  ASSERT_TRUE(plan.ok());
  for (int rank : {-1, 2}) {
    Result<LlamaWeights> w = load_llama2c_shard(testing::bundled_checkpoint(), *plan, rank);
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(w.status().message().find("is not in the plan's 2 ranks"), std::string::npos);
  }
}

// Bad files fail as load_llama2c fails them: same code, same message.
TEST(ShardLoader, BadFilesFailAsTheFullLoaderFails) {
  const std::string good = testing::read_file(testing::bundled_checkpoint());
  Result<ShardPlan> plan = make_shard_plan(test_shapes::stories260k(), 2, 1, {});
  ASSERT_TRUE(plan.ok());
  std::string bad_header = good;
  const int32_t zero_heads = 0;
  std::memcpy(bad_header.data() + 12, &zero_heads, 4);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"truncated", good.substr(0, good.size() - 4)},
      {"trailing", good + "xxxx"},
      {"empty", ""},
      {"bad header", bad_header},
  };
  TempDir dir;
  for (const auto& [what, bytes] : files) {
    SCOPED_TRACE(what);
    testing::write_file(dir.file("m.bin"), bytes);
    Result<LlamaWeights> full = load_llama2c(dir.file("m.bin"));
    Result<LlamaWeights> part = load_llama2c_shard(dir.file("m.bin"), *plan, 1);
    ASSERT_FALSE(full.ok());
    ASSERT_FALSE(part.ok());
    EXPECT_EQ(part.status().to_string(), full.status().to_string());
  }
  testing::write_file(dir.file("m.bin"), good.substr(0, good.size() - 4));
  Result<LlamaWeights> truncated = load_llama2c_shard(dir.file("m.bin"), *plan, 1);
  EXPECT_EQ(truncated.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(truncated.status().message().find("truncated"), std::string::npos);
  Result<LlamaWeights> missing = load_llama2c_shard(dir.file("absent.bin"), *plan, 1);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace tandem::sharding
