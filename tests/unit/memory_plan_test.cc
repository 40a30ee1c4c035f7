// MemoryPlan: each node's weights, KV cache, activations, overhead and
// headroom; whether they fit; the largest context, solved in closed form and
// checked against a brute-force scan; the refusals. The layout search and
// the presets: layout_search_test.cc.
// Expected numbers are worked out by hand below, not by the planner's code.
#include "sharding/memory_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "sharding/model_presets.h"
#include "tests/unit/shard_test_shapes.h"

namespace tandem::sharding {
namespace {

using test_shapes::gqa_8_2;
using test_shapes::llama31_405b;
using test_shapes::stories260k;

MemoryPlan plan_or_die(const LlamaConfig& c, const MemoryPlanOptions& o) {
  Result<MemoryPlan> p = make_memory_plan(c, o);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return p.ok() ? *p : MemoryPlan{};
}

MemoryPlanOptions two_sparks(DType weights, int tp = 2, int pp = 1) {
  MemoryPlanOptions o;
  o.tp = tp;
  o.pp = pp;
  o.weight_dtype = weights;
  o.node_memory_bytes = {kDefaultNodeMemoryBytes, kDefaultNodeMemoryBytes};
  return o;
}

bool has_note(const MemoryPlan& p, const std::string& text) {
  for (const auto& n : p.notes)
    if (n.find(text) != std::string::npos) return true;
  return false;
}

TEST(MemoryPlan, SmallShapeByHand) {
  // gqa_8_2 at tp=2: head_dim 16; rank 0 holds 4 query heads (q 64), 1 KV
  // head (kv 16), 125 MLP columns, 501 vocab rows; untied classifier.
  MemoryPlanOptions o;
  o.tp = 2;
  o.kv_dtype = DType::kF32;
  o.context = 32;
  o.batch = 2;
  o.node_memory_bytes = {kGB, kGB};
  o.overhead_bytes = 1000;
  o.headroom_bytes = 0;
  const MemoryPlan p = plan_or_die(gqa_8_2(), o);
  ASSERT_EQ(p.nodes.size(), 2u);
  const NodeMemory& n = p.nodes[0];
  // Per layer: norms 2*128*4=1024, wq 64*128*4=32768, wk+wv 2*16*128*4=16384,
  // wo 128*64*4=32768, w1+w3 2*125*128*4=128000, w2 128*125*4=64000 ->
  // 274944; x4 layers, + embedding and classifier 501*128*4 each + final norm.
  EXPECT_EQ(n.weight_bytes, 4u * 274944 + 2 * 256512 + 512);
  // KV: 4 layers * 2 * 16 * 4 bytes = 512 a position; 32 positions, 2 sequences.
  EXPECT_EQ(n.kv_bytes_per_position, 512u);
  EXPECT_EQ(n.kv_bytes, 2u * 32 * 512);
  // T = 64 tokens: 4 * 64 * (2*128 + 2*64 + 2*16 + 2*125).
  EXPECT_EQ(n.buffer_bytes, 4u * 64 * 666);
  // Logits of 2 sequences: 501 held + 501 padded + 1002 gathered floats.
  EXPECT_EQ(n.logit_bytes, 4u * 2 * (501 + 501 + 1002));
  EXPECT_EQ(n.gemm_bytes, 32u << 20);  // f32 weights: cuBLAS' workspace only
  // Scores 4 * 4 heads * 64 tokens * 32 positions; partials 4 * 16 * 4 * (16 + 2), one chunk.
  EXPECT_EQ(n.attention_bytes, 4u * 4 * 64 * 32 + 4u * 16 * 4 * 18);
  EXPECT_EQ(n.activation_bytes, 170496u + 16032 + (32u << 20) + 32768 + 4608);
  EXPECT_EQ(n.total_bytes, n.weight_bytes + n.kv_bytes + n.activation_bytes + 1000);
  EXPECT_TRUE(n.fits);
  EXPECT_EQ(n.free_bytes, kGB - n.total_bytes);
  EXPECT_TRUE(p.fits);
  EXPECT_EQ(p.largest_context, 32);  // the model's 32 positions bind
  EXPECT_TRUE(p.model_limit_binds);
  EXPECT_EQ(p.binding_node, -1);
}

TEST(MemoryPlan, Q8KvAndReplicatedHeads) {
  MemoryPlanOptions o;
  o.kv_dtype = DType::kQ8_0;
  o.node_memory_bytes = {kDefaultNodeMemoryBytes};
  // stories110M: 12 layers, head_dim 64, 12 KV heads: 768 per position, 24
  // blocks of 34 bytes; x2 (K, V) x 12 layers.
  Result<LlamaConfig> s110 = model_preset("stories110M");
  ASSERT_TRUE(s110.ok());
  EXPECT_EQ(plan_or_die(*s110, o).nodes[0].kv_bytes_per_position, 12u * 2 * 24 * 34);
  // tp=4 over 2 KV heads: each KV head lives on 2 ranks and counts on each.
  o = MemoryPlanOptions{};
  o.tp = 4;
  o.kv_dtype = DType::kF32;
  o.node_memory_bytes.assign(4, kGB);
  const MemoryPlan p = plan_or_die(gqa_8_2(), o);
  for (const NodeMemory& n : p.nodes) EXPECT_EQ(n.kv_bytes_per_position, 4u * 2 * 16 * 4);
  EXPECT_TRUE(has_note(p, "replicated on 2 ranks"));
}

// Llama 3.1 405B, q4_0 weights, f16 KV, tp=2 on two 128 GB Sparks, defaults:
// 1.5 GiB overhead, 4 GB headroom, 64 tokens per forward.
//  weights: matrices 405,849,243,648 elements * 18/32 / 2 = 114,145,099,776
//           + norms (2*126+1) * 16384 * 4 = 16,580,608 (replicated)
//           = 114,161,680,384
//  fixed activations: buffers 4*64*(2*16384 + 2*8192 + 2*512 + 2*26624) = 26,476,544;
//           logits 4*(64128 + 64128 + 128256) = 1,026,048; cuBLAS 33,554,432;
//           x in bf16 2*64*26624 = 3,407,872; w1 in bf16 2*26624*16384 = 872,415,232
//  fixed = weights + 936,880,128 + 1,610,612,736 + 4e9 = 120,709,173,248
//  per position: KV 126*2*4*128*2 = 258,048 + scores 4*64*64 = 16,384 = 274,432
//  per 64 positions: partials 4*16*64*130 = 532,480
//  avail = 128e9 - fixed = 7,290,826,752; chunks k = floor((avail + 63*274,432) /
//  (64*274,432 + 532,480)) = 403; C = min(25,792, (avail - 403*532,480) / 274,432) = 25,785.
TEST(MemoryPlan, Llama405bQ4OnTwoSparksFits) {
  const MemoryPlan p = plan_or_die(llama31_405b(), two_sparks(DType::kQ4_0));
  EXPECT_EQ(p.options.context, 8192);
  EXPECT_TRUE(p.fits);
  for (const NodeMemory& n : p.nodes) {
    EXPECT_EQ(n.weight_bytes, 114161680384u);
    EXPECT_EQ(n.kv_bytes, 258048u * 8192);
    EXPECT_EQ(n.fixed_bytes, 120709173248u);
    EXPECT_EQ(n.per_position_bytes, 274432u);
    EXPECT_EQ(n.per_chunk_bytes, 532480u);
    EXPECT_EQ(n.total_bytes, 123025477632u);  // 4.97 GB free at context 8192
  }
  EXPECT_EQ(p.largest_context, 25785);
  // Within rounding of the linear estimate avail / (274,432 + 532,480/64) = 25,785.2.
  EXPECT_NEAR(static_cast<double>(p.largest_context), 7290826752.0 / (274432 + 532480 / 64.0), 64);
  EXPECT_FALSE(p.model_limit_binds);
  EXPECT_EQ(p.binding_node, 0);
  EXPECT_TRUE(has_note(p, "as a serve job keeps it with engine.kv_dtype: f16"));
  // At the solved context it fits, one more and it does not.
  MemoryPlanOptions o = two_sparks(DType::kQ4_0);
  o.context = 25785;
  EXPECT_TRUE(plan_or_die(llama31_405b(), o).fits);
  o.context = 25786;
  EXPECT_FALSE(plan_or_die(llama31_405b(), o).fits);
}

// bf16: weights 405,849,243,648 + 16,580,608 = 405,865,824,256 per node; at
// context 8192 + KV 2,113,929,216 + activations 64,464,896 (no w1 widening)
// + 202,375,168 (attention) + 1,610,612,736 + 4e9 = 413,857,206,272: short
// by 285,857,206,272 bytes, 285.86 GB.
TEST(MemoryPlan, Llama405bBf16IsShortByHandComputedBytes) {
  const MemoryPlan p = plan_or_die(llama31_405b(), two_sparks(DType::kBF16));
  EXPECT_FALSE(p.fits);
  EXPECT_EQ(p.nodes[0].weight_bytes, 405865824256u);
  EXPECT_EQ(p.nodes[0].total_bytes, 413857206272u);
  EXPECT_EQ(p.short_bytes, 285857206272u);
  EXPECT_EQ(p.largest_context, 0);
  EXPECT_TRUE(has_note(p, "weights and fixed costs alone"));
}

// A Mistral-style sliding window shorter than the trained context is the
// default context (LlamaModel refuses more: model_arch_test.cc); a longer
// window, or none, leaves the trained context up to 8192.
TEST(MemoryPlan, DefaultContextIsTheSlidingWindowWhenShorter) {
  LlamaConfig windowed = llama31_405b();
  windowed.sliding_window = 4096;
  EXPECT_EQ(plan_or_die(windowed, two_sparks(DType::kQ4_0)).options.context, 4096);
  windowed.sliding_window = 1 << 20;  // wider than the 131072 trained positions
  EXPECT_EQ(plan_or_die(windowed, two_sparks(DType::kQ4_0)).options.context, 8192);
  LlamaConfig small = stories260k();
  small.sliding_window = 100;  // of 512
  const MemoryPlan windowed_plan = plan_or_die(small, two_sparks(DType::kF32));
  EXPECT_EQ(windowed_plan.options.context, 100);
  // The window also caps the longest context, and binds before memory does.
  EXPECT_EQ(windowed_plan.largest_context, 100);
  EXPECT_TRUE(has_note(windowed_plan, "the model's sliding window (100) binds before memory does"));
  MemoryPlanOptions beyond = two_sparks(DType::kF32);
  beyond.context = 101;
  Result<MemoryPlan> refused = make_memory_plan(small, beyond);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("context 101 exceeds the model's sliding attention window of 100"),
            std::string::npos)
      << refused.status().to_string();
  small.sliding_window = 0;
  EXPECT_EQ(plan_or_die(small, two_sparks(DType::kF32)).options.context, 512);
}

TEST(MemoryPlan, SolverMatchesBruteForce) {
  std::mt19937_64 rng(7);
  auto cost = [](uint64_t fixed, uint64_t a, uint64_t b, uint64_t c) {
    return fixed + a * c + b * ((c + 63) / 64);
  };
  for (int i = 0; i < 2000; ++i) {
    const uint64_t a = 1 + rng() % 500, b = rng() % 40000, fixed = rng() % 100000;
    const uint64_t memory = rng() % 2000000;
    int64_t brute = 0;
    for (uint64_t c = 1; cost(fixed, a, b, c) <= memory; ++c) brute = static_cast<int64_t>(c);
    ASSERT_EQ(largest_context_for(memory, fixed, a, b), brute)
        << "memory " << memory << " fixed " << fixed << " a " << a << " b " << b;
  }
}

TEST(MemoryPlan, LargestContextMatchesPlansScannedOverContext) {
  // Every context's plan on a small shape; for each memory size the largest
  // context is the last one whose plan fits on both nodes.
  LlamaConfig c = gqa_8_2();
  c.max_seq_len = 3000;
  MemoryPlanOptions o;
  o.tp = 2;
  o.node_memory_bytes = {kGB, kGB};
  std::vector<uint64_t> need(c.max_seq_len + 1);
  for (int64_t ctx = 1; ctx <= c.max_seq_len; ++ctx) {
    o.context = ctx;
    const MemoryPlan p = plan_or_die(c, o);
    need[ctx] = std::max(p.nodes[0].total_bytes, p.nodes[1].total_bytes);
  }
  int between = 0;  // memory sizes whose answer is neither 0 nor the model's limit
  for (uint64_t memory = need[1] - 5; memory < need[c.max_seq_len] + 5; memory += 9973) {
    o.context = 1;
    o.node_memory_bytes = {memory, memory};
    int64_t brute = 0;
    for (int64_t ctx = 1; ctx <= c.max_seq_len && need[ctx] <= memory; ++ctx) brute = ctx;
    const MemoryPlan p = plan_or_die(c, o);
    ASSERT_EQ(p.largest_context, brute) << "memory " << memory;
    if (brute < c.max_seq_len) {
      EXPECT_FALSE(p.model_limit_binds);
    }
    between += brute > 0 && brute < c.max_seq_len;
  }
  EXPECT_GT(between, 300);
}

TEST(MemoryPlan, Refusals) {
  MemoryPlanOptions o;
  o.node_memory_bytes = {kGB};
  auto refused = [](const LlamaConfig& c, const MemoryPlanOptions& opt, const std::string& text) {
    Result<MemoryPlan> p = make_memory_plan(c, opt);
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find(text), std::string::npos) << p.status().message();
  };
  MemoryPlanOptions x = o;
  x.context = 513;
  refused(stories260k(), x, "context 513 is outside [1, 512]");
  x = o;
  x.kv_dtype = DType::kQ8_0;
  refused(stories260k(), x, "q8_0 KV cache stores blocks of 32 along head_dim, but head_dim is 8");
  x = o;
  x.kv_dtype = DType::kQ4_0;
  refused(stories260k(), x, "not a KV cache type");
  x = o;
  x.batch = 0;
  refused(stories260k(), x, "batch 0");
  x = o;
  x.node_memory_bytes = {};
  refused(stories260k(), x, "no node memory");
  x = o;
  x.tp = 2;
  refused(stories260k(), x, "tp*pp=2 but 1 nodes");
  x = o;
  x.tp = 3;
  x.node_memory_bytes.assign(3, kGB);
  refused(stories260k(), x, "tp=3 divides neither");
  x = o;
  x.headroom_fraction = 1.0;
  refused(stories260k(), x, "headroom_fraction");
}

}  // namespace
}  // namespace tandem::sharding
