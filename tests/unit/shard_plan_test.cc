// ShardPlan: the ranges each rank holds and the bytes they weigh, on the
// bundled model's shape, a grouped-query shape and Llama 3.1 405B, and every
// plan that must be refused. Expected byte counts are worked out by hand
// below, not by the formulas the plan uses.
#include "sharding/shard_plan.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/llama2c_loader.h"
#include "tests/unit/shard_test_shapes.h"

namespace tandem::sharding {
namespace {

using test_shapes::gqa_8_2;
using test_shapes::llama31_405b;
using test_shapes::stories260k;

ShardPlan plan_or_die(const LlamaConfig& c, int tp, int pp, std::vector<uint64_t> mem = {},
                      DType dt = DType::kF32) {
  Result<ShardPlan> p = make_shard_plan(c, tp, pp, mem, dt);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return p.ok() ? *p : ShardPlan{};
}

bool has_note(const ShardPlan& p, const std::string& text) {
  for (const auto& n : p.notes)
    if (n.find(text) != std::string::npos) return true;
  return false;
}

TEST(ShardPlan, Stories260kTp2) {
  const ShardPlan p = plan_or_die(stories260k(), 2, 1);
  ASSERT_EQ(p.ranks.size(), 2u);
  const RankShard& r0 = p.ranks[0];
  const RankShard& r1 = p.ranks[1];
  EXPECT_EQ(r0.layers, (IndexRange{0, 5}));
  EXPECT_EQ(r1.layers, (IndexRange{0, 5}));
  EXPECT_EQ(r0.q_heads, (IndexRange{0, 4}));
  EXPECT_EQ(r1.q_heads, (IndexRange{4, 8}));
  EXPECT_EQ(r0.kv_heads, (IndexRange{0, 2}));
  EXPECT_EQ(r1.kv_heads, (IndexRange{2, 4}));
  EXPECT_EQ(r0.hidden, (IndexRange{0, 86}));
  EXPECT_EQ(r1.hidden, (IndexRange{86, 172}));
  EXPECT_EQ(r0.vocab, (IndexRange{0, 256}));
  EXPECT_EQ(r1.vocab, (IndexRange{256, 512}));
  for (const RankShard& r : p.ranks) EXPECT_TRUE(r.holds_embedding && r.holds_classifier);
  EXPECT_EQ(p.kv_replication, 1);
  EXPECT_TRUE(p.notes.empty());
  // Per layer: norms 2*64*4=512, wq 32*64*4=8192, wk+wv 2*16*64*4=8192,
  // wo 64*32*4=8192, w1+w3 2*86*64*4=44032, w2 64*86*4=22016 -> 91136.
  // x5 layers + 256 vocab rows * 64 * 4 + final norm 256.
  EXPECT_EQ(r0.weight_bytes, 5u * 91136 + 65536 + 256);
  EXPECT_EQ(r1.weight_bytes, r0.weight_bytes);
}

TEST(ShardPlan, TotalMatchesTheCheckpointAndParameterCount) {
  const LlamaConfig c = stories260k();
  const ShardPlan p = plan_or_die(c, 1, 1);
  // The file: header, weights, then 512*8 floats of legacy RoPE tables.
  Result<uint64_t> file = llama2c_expected_bytes(c, "test");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(p.total_weight_bytes, *file - kLlama2cHeaderBytes - 512u * 8 * 4);
  EXPECT_EQ(p.total_weight_bytes, 1040128u);
  EXPECT_EQ(p.total_weight_bytes, static_cast<uint64_t>(c.parameter_count()) * 4);
  EXPECT_EQ(p.ranks[0].weight_bytes, p.total_weight_bytes);
  EXPECT_EQ(plan_or_die(gqa_8_2(), 1, 1).total_weight_bytes,
            static_cast<uint64_t>(gqa_8_2().parameter_count()) * 4);
}

TEST(ShardPlan, Stories260kPp2) {
  const ShardPlan p = plan_or_die(stories260k(), 1, 2);
  ASSERT_EQ(p.ranks.size(), 2u);
  EXPECT_EQ(p.ranks[0].layers, (IndexRange{0, 3}));
  EXPECT_EQ(p.ranks[1].layers, (IndexRange{3, 5}));
  EXPECT_TRUE(p.ranks[0].holds_embedding);
  EXPECT_FALSE(p.ranks[0].holds_classifier);
  EXPECT_FALSE(p.ranks[1].holds_embedding);
  EXPECT_TRUE(p.ranks[1].holds_classifier);
  EXPECT_EQ(p.ranks[0].q_heads, (IndexRange{0, 8}));
  EXPECT_EQ(p.ranks[1].hidden, (IndexRange{0, 172}));
  // Whole layer: 512 + 16384 + 16384 + 16384 + 88064 + 44032 = 181760 bytes;
  // the table is 512*64*4 = 131072, held again by the last stage (shared).
  EXPECT_EQ(p.ranks[0].weight_bytes, 3u * 181760 + 131072);
  EXPECT_EQ(p.ranks[1].weight_bytes, 2u * 181760 + 256 + 131072);
  EXPECT_TRUE(has_note(p, "5 layers over pp=2: the first 1 stage(s) run one more"));
}

TEST(ShardPlan, Stories260kSingleRank) {
  const ShardPlan p = plan_or_die(stories260k(), 1, 1, {1u << 20});
  ASSERT_EQ(p.ranks.size(), 1u);
  EXPECT_EQ(p.ranks[0].kv_heads, (IndexRange{0, 4}));
  EXPECT_EQ(p.ranks[0].vocab, (IndexRange{0, 512}));
  EXPECT_TRUE(p.fits);
  EXPECT_EQ(p.ranks[0].node_memory_bytes, 1u << 20);
}

TEST(ShardPlan, KvHeadsReplicatedWhenTpExceedsThem) {
  const ShardPlan p = plan_or_die(stories260k(), 8, 1);
  EXPECT_EQ(p.kv_replication, 2);
  EXPECT_TRUE(has_note(p, "tp=8 > 4 KV heads: each KV head is replicated on 2 ranks"));
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(p.ranks[r].q_heads, (IndexRange{r, r + 1}));
    EXPECT_EQ(p.ranks[r].kv_heads, (IndexRange{r / 2, r / 2 + 1}));
  }
  const ShardPlan g = plan_or_die(gqa_8_2(), 4, 1);
  EXPECT_EQ(g.kv_replication, 2);
  const IndexRange expect_kv[] = {{0, 1}, {0, 1}, {1, 2}, {1, 2}};
  for (int r = 0; r < 4; ++r) EXPECT_EQ(g.ranks[r].kv_heads, expect_kv[r]) << "rank " << r;
}

TEST(ShardPlan, GqaGroupsStayWithTheirKvHead) {
  const ShardPlan p = plan_or_die(gqa_8_2(), 2, 2);
  ASSERT_EQ(p.ranks.size(), 4u);
  // rank = stage * tp + tp_rank
  EXPECT_EQ(p.ranks[3].stage, 1);
  EXPECT_EQ(p.ranks[3].tp_rank, 1);
  EXPECT_EQ(&p.at(1, 0), &p.ranks[2]);
  EXPECT_EQ(p.ranks[1].q_heads, (IndexRange{4, 8}));
  EXPECT_EQ(p.ranks[1].kv_heads, (IndexRange{1, 2}));
  EXPECT_EQ(p.ranks[2].layers, (IndexRange{2, 4}));
  // hidden 250 splits 125/125; vocab 1001 splits 501/500.
  EXPECT_EQ(p.ranks[0].hidden, (IndexRange{0, 125}));
  EXPECT_EQ(p.ranks[0].vocab, (IndexRange{0, 501}));
  EXPECT_EQ(p.ranks[3].vocab, (IndexRange{501, 1001}));
  EXPECT_TRUE(has_note(p, "gathered logits pad to 501"));
}

// Over many splits: each stage's ranks partition heads, columns and vocab,
// the stages partition the layers, and every query head's KV head is local.
TEST(ShardPlan, RangesPartitionTheModel) {
  for (const LlamaConfig& c : {stories260k(), gqa_8_2()}) {
    for (int tp : {1, 2, 4, 8}) {
      for (int pp : {1, 2, 3, 4}) {
        SCOPED_TRACE("tp=" + std::to_string(tp) + " pp=" + std::to_string(pp));
        const ShardPlan p = plan_or_die(c, tp, pp);
        ASSERT_EQ(p.ranks.size(), static_cast<size_t>(tp * pp));
        int64_t layer = 0;
        for (int s = 0; s < pp; ++s) {
          EXPECT_EQ(p.at(s, 0).layers.begin, layer);
          layer = p.at(s, 0).layers.end;
          int64_t q = 0, h = 0, v = 0;
          for (int t = 0; t < tp; ++t) {
            const RankShard& r = p.at(s, t);
            EXPECT_EQ(r.rank, s * tp + t);
            EXPECT_EQ(r.layers, p.at(s, 0).layers);
            EXPECT_EQ(r.q_heads.begin, q);
            EXPECT_EQ(r.hidden.begin, h);
            EXPECT_EQ(r.vocab.begin, v);
            q = r.q_heads.end, h = r.hidden.end, v = r.vocab.end;
            EXPECT_LE(std::abs(r.hidden.size() - c.hidden_dim / tp), 1);
            EXPECT_LE(std::abs(r.vocab.size() - c.vocab_size / tp), 1);
            const int64_t group = c.n_heads / c.n_kv_heads;
            for (int64_t head = r.q_heads.begin; head < r.q_heads.end; ++head)
              EXPECT_TRUE(r.kv_heads.contains(head / group));
            EXPECT_EQ(r.kv_heads.begin, r.q_heads.begin / group);
            EXPECT_EQ(r.kv_heads.end, (r.q_heads.end + group - 1) / group);
          }
          EXPECT_EQ(q, c.n_heads);
          EXPECT_EQ(h, c.hidden_dim);
          EXPECT_EQ(v, c.vocab_size);
        }
        EXPECT_EQ(layer, c.n_layers);
      }
    }
  }
}

TEST(ShardPlan, Llama405bTp2HalvesTheWeights) {
  const ShardPlan p = plan_or_die(llama31_405b(), 2, 1);
  ASSERT_EQ(p.ranks.size(), 2u);
  // ~405.9e9 parameters in f32.
  EXPECT_EQ(p.total_weight_bytes, static_cast<uint64_t>(llama31_405b().parameter_count()) * 4);
  EXPECT_GT(p.total_weight_bytes, 1600e9);
  EXPECT_LT(p.total_weight_bytes, 1650e9);
  const double half = static_cast<double>(p.total_weight_bytes) / 2;
  for (const RankShard& r : p.ranks) {
    EXPECT_NEAR(static_cast<double>(r.weight_bytes), half, 0.1 * half);
    EXPECT_GE(static_cast<double>(r.weight_bytes), half);  // norms are replicated
    EXPECT_EQ(r.q_heads.size(), 64);
    EXPECT_EQ(r.kv_heads.size(), 4);
    EXPECT_EQ(r.hidden.size(), 26624);
    EXPECT_EQ(r.vocab.size(), 64128);
  }
  // Replicated: attn + ffn norms of 126 layers and the final norm, once more.
  EXPECT_EQ(p.ranks[0].weight_bytes + p.ranks[1].weight_bytes,
            p.total_weight_bytes + (2u * 126 + 1) * 16384 * 4);
}

TEST(ShardPlan, Llama405bOnTwo128GiBNodes) {
  const std::vector<uint64_t> spark = {128ull << 30, 128ull << 30};
  const ShardPlan f32 = plan_or_die(llama31_405b(), 2, 1, spark);
  EXPECT_FALSE(f32.fits);
  EXPECT_FALSE(f32.ranks[0].fits);
  EXPECT_TRUE(has_note(f32, "rank 0 needs"));
  // Q4_0: 18 bytes per 32 weights, ~114 GB per rank: fits.
  const ShardPlan q4 = plan_or_die(llama31_405b(), 2, 1, spark, DType::kQ4_0);
  EXPECT_TRUE(q4.fits) << (q4.notes.empty() ? "" : q4.notes.back());
  EXPECT_NEAR(static_cast<double>(q4.total_weight_bytes),
              static_cast<double>(f32.total_weight_bytes) * 18 / 128, 0.01 * 228e9);
}

TEST(ShardPlan, MemoryBoundaryIsExact) {
  const uint64_t need = 5u * 91136 + 65536 + 256;
  const ShardPlan p = plan_or_die(stories260k(), 2, 1, {need, need - 1});
  EXPECT_TRUE(p.ranks[0].fits);
  EXPECT_FALSE(p.ranks[1].fits);
  EXPECT_FALSE(p.fits);
  EXPECT_TRUE(has_note(p, "rank 1 needs"));
  EXPECT_FALSE(has_note(p, "rank 0 needs"));
}

void expect_refused(const LlamaConfig& c, int tp, int pp, const std::string& reason,
                    std::vector<uint64_t> mem = {}, DType dt = DType::kF32) {
  Result<ShardPlan> p = make_shard_plan(c, tp, pp, mem, dt);
  ASSERT_FALSE(p.ok()) << "tp=" << tp << " pp=" << pp << " was accepted";
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << p.status().to_string();
  EXPECT_NE(p.status().message().find(reason), std::string::npos) << p.status().to_string();
}

TEST(ShardPlan, RefusesImpossiblePlans) {
  const LlamaConfig s = stories260k();
  expect_refused(s, 3, 1, "tp=3 divides neither the 8 query heads nor the 4 KV heads");
  expect_refused(s, 16, 1, "tp=16 divides neither the 8 query heads nor the 4 KV heads");
  expect_refused(s, 1, 6, "pp=6 is more stages than the model's 5 layers");
  expect_refused(s, 2, 2, "tp*pp=4 but 2 nodes", {1u << 30, 1u << 30});
  expect_refused(s, 1, 1, "tp*pp=1 but 2 nodes", {1u << 30, 1u << 30});
  expect_refused(s, 0, 1, "tp=0 pp=1: both must be at least 1");
  expect_refused(s, 2, -1, "tp=2 pp=-1: both must be at least 1");
  expect_refused(s, 1, 1, "not a weight type", {}, DType::kI32);
  // Q8_0 blocks of 32 cannot split hidden_dim=172.
  expect_refused(s, 2, 1, "hidden_dim", {}, DType::kQ8_0);

  LlamaConfig twelve = s;  // 12 query heads in 4 groups of 3
  twelve.dim = 96;
  twelve.n_heads = 12;
  expect_refused(twelve, 6, 1, "tp=6 splits the 12 query heads but not the 4 KV heads");

  LlamaConfig bad = s;
  bad.dim = 65;
  expect_refused(bad, 1, 1, "dim=65 is not a multiple of n_heads=8");
  bad = s;
  bad.n_layers = 0;
  expect_refused(bad, 1, 1, "n_layers=0");
  bad = s;
  bad.vocab_size = kMaxVocab + 1;
  expect_refused(bad, 1, 1, "vocab_size");
}

TEST(ShardPlan, AcceptsWhatTheRefusalsBorder) {
  LlamaConfig twelve = stories260k();
  twelve.dim = 96;
  twelve.n_heads = 12;
  EXPECT_TRUE(make_shard_plan(twelve, 4, 1, {}).ok());    // tp divides the 4 KV heads
  EXPECT_TRUE(make_shard_plan(twelve, 12, 1, {}).ok());   // a multiple of them
  EXPECT_TRUE(make_shard_plan(stories260k(), 1, 5, {}).ok());  // one layer per stage
  EXPECT_TRUE(make_shard_plan(stories260k(), 2, 2, {1, 1, 1, 1}).ok());
  LlamaConfig q8 = stories260k();
  q8.hidden_dim = 192;  // 6 blocks of 32: 96 columns per rank
  Result<ShardPlan> p = make_shard_plan(q8, 2, 1, {}, DType::kQ8_0);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->ranks[1].hidden, (IndexRange{96, 192}));
  // Q8_0 is 34 bytes per 32 weights; norms stay f32.
  EXPECT_EQ(matrix_bytes(96, 64, DType::kQ8_0), 96u * 2 * 34);
}

}  // namespace
}  // namespace tandem::sharding
