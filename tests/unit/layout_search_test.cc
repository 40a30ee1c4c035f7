// search_layouts' ranking of tp x pp (better_layout's rule: fits, context,
// decode reads in turn, link bytes) and the model presets' shapes.
#include <gtest/gtest.h>

#include <string>

#include "sharding/memory_plan.h"
#include "sharding/model_presets.h"
#include "tests/unit/shard_test_shapes.h"

namespace tandem::sharding {
namespace {

using test_shapes::llama31_405b;
using test_shapes::stories260k;

MemoryPlanOptions two_sparks(DType weights) {
  MemoryPlanOptions o;
  o.weight_dtype = weights;
  o.node_memory_bytes = {kDefaultNodeMemoryBytes, kDefaultNodeMemoryBytes};
  return o;
}

TEST(LayoutSearch, RanksLayouts) {
  MemoryPlanOptions o = two_sparks(DType::kQ4_0);
  Result<LayoutSearch> s = search_layouts(llama31_405b(), o);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  ASSERT_EQ(s->ranked.size(), 2u);
  // tp=2 holds more context: pp=2 keeps all 128 heads' scores and widens
  // a whole w1 to bf16 on each stage.
  EXPECT_EQ(s->ranked[0].options.tp, 2);
  EXPECT_EQ(s->ranked[1].options.pp, 2);
  EXPECT_TRUE(s->ranked[1].fits);
  EXPECT_GT(s->ranked[0].largest_context, s->ranked[1].largest_context);
  EXPECT_TRUE(s->refused.empty());
  // Four nodes: tp=2 x pp=2 is refused (the runtime runs one of them), tp=4
  // and pp=4 are planned, tp=4 first (it holds more context).
  o.node_memory_bytes.assign(4, kDefaultNodeMemoryBytes);
  s = search_layouts(llama31_405b(), o);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->ranked.size(), 2u);
  EXPECT_EQ(s->ranked[0].options.tp, 4);
  EXPECT_EQ(s->ranked[1].options.pp, 4);
  ASSERT_EQ(s->refused.size(), 1u);
  EXPECT_EQ(s->refused[0].tp, 2);
  EXPECT_NE(s->refused[0].reason.find("tp or pp alone"), std::string::npos);
  // Both reach the model's 512 positions: the tie goes to tp, whose ranks
  // read their halves at once, over pp's stages reading in turn.
  o = two_sparks(DType::kF32);
  s = search_layouts(stories260k(), o);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->ranked.size(), 2u);
  EXPECT_EQ(s->ranked[0].largest_context, 512);
  EXPECT_EQ(s->ranked[1].largest_context, 512);
  EXPECT_EQ(s->ranked[0].options.tp, 2);
  EXPECT_LT(s->ranked[0].decode_read_bytes, s->ranked[1].decode_read_bytes);
  EXPECT_GT(s->ranked[0].link_bytes_per_token, s->ranked[1].link_bytes_per_token);
  // stories260K: 5 layers -> 11 all-reduces of 64 floats, each 2*(2-1)*256 bytes; pp: one 256-byte hand-off.
  EXPECT_EQ(s->ranked[0].link_bytes_per_token, 11u * 2 * 256);
  EXPECT_EQ(s->ranked[1].link_bytes_per_token, 256u);
}

TEST(LayoutSearch, BetterLayoutOrder) {
  MemoryPlan a, b;
  a.fits = false;
  a.largest_context = 100;
  b.fits = true;
  b.largest_context = 10;
  EXPECT_TRUE(better_layout(b, a));  // fitting first
  a.fits = true;
  EXPECT_TRUE(better_layout(a, b));  // then context
  b.largest_context = 100;
  a.decode_read_bytes = 2;
  b.decode_read_bytes = 1;
  EXPECT_TRUE(better_layout(b, a));  // then decode reads
  a.decode_read_bytes = 1;
  a.link_bytes_per_token = 5;
  b.link_bytes_per_token = 6;
  EXPECT_TRUE(better_layout(a, b));  // then link bytes
}

TEST(ModelPresets, ShapesAndRefusals) {
  Result<LlamaConfig> c = model_preset("Llama-3.1-70B");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->dim, 8192);
  EXPECT_EQ(c->n_layers, 80);
  EXPECT_EQ(c->n_heads, 64);
  EXPECT_EQ(c->n_kv_heads, 8);
  EXPECT_EQ(c->hidden_dim, 28672);
  EXPECT_FALSE(c->shared_classifier);
  c = model_preset("llama-3.1-405b");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->parameter_count(), llama31_405b().parameter_count());  // ~405.85 B
  c = model_preset("llama-3.1-8b");
  ASSERT_TRUE(c.ok());
  EXPECT_NEAR(static_cast<double>(c->parameter_count()), 8.03e9, 0.01e9);
  EXPECT_EQ(model_preset("qwen3-235b-a22b").status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(model_preset("Qwen3-235B-A22B").status().message().find("MoE comes later"), std::string::npos);
  EXPECT_EQ(model_preset("llama-9").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace tandem::sharding
