// `tandem plan` as a user runs it: the per-node table, "fits" and the largest
// context on stdout; exit 0 when it fits, 1 when not, 2 when no plan can be
// made. The numbers are memory_plan_test.cc's hand-computed ones.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/unit/arch_models.h"
#include "tests/unit/process_util.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

testing::CommandResult tandem(std::vector<std::string> args) {
  args.insert(args.begin(), testing::tandem_binary());
  return testing::run_command(args, std::chrono::seconds(60));
}

bool has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

TEST(PlanCli, Llama405bQ4FitsTwoSparks) {
  // A serve job with an f16 pool: the KV cache the plan takes is the run's.
  auto r = tandem({"plan", "--model", "llama-3.1-405b", "--dtype", "q4_0", "--set", "job=serve", "--set",
                   "engine.kv_dtype=f16"});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "tp=2 pp=1 on 2 node(s); weights q4_0, KV cache f16, context 8192")) << r.out;
  EXPECT_TRUE(has(r.out, "114.16 GB")) << r.out;  // weights per node
  EXPECT_TRUE(has(r.out, "fits: yes (context 8192, batch 1)")) << r.out;
  EXPECT_TRUE(has(r.out, "largest context: 25785 (node 0's memory binds")) << r.out;
  EXPECT_TRUE(has(r.out, "KV cache planned in f16, as a serve job keeps it with engine.kv_dtype: f16")) << r.out;
}

TEST(PlanCli, TheKvCacheDefaultsToWhatTheRunKeeps) {
  // The default config's generate job keeps an f32 cache: twice the bytes a
  // position, so about half the context of the f16 plan above.
  auto generate = tandem({"plan", "--model", "llama-3.1-405b", "--dtype", "q4_0"});
  EXPECT_EQ(generate.exit_code, 0) << generate.err << generate.out;
  EXPECT_TRUE(has(generate.out, "weights q4_0, KV cache f32, context 8192")) << generate.out;
  EXPECT_TRUE(has(generate.out, "largest context: 13481 (node 0's memory binds")) << generate.out;
  // A serve job's pool is f32 unless engine.kv_dtype says f16; the flag wins over both.
  auto serve = tandem({"plan", "--model", "llama-3.1-405b", "--dtype", "q4_0", "--set", "job=serve"});
  EXPECT_TRUE(has(serve.out, "KV cache f32")) << serve.out;
  auto flag = tandem({"plan", "--model", "llama-3.1-405b", "--dtype", "q4_0", "--kv-dtype", "f16"});
  EXPECT_TRUE(has(flag.out, "KV cache f16")) << flag.out;
}

TEST(PlanCli, Llama405bBf16IsShortAndExitsOne) {
  auto r = tandem({"plan", "--model", "llama-3.1-405b", "--dtype", "bf16", "--kv-dtype", "f16"});
  EXPECT_EQ(r.exit_code, 1) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "fits: no (context 8192, batch 1): short by 285.86 GB")) << r.out;
  EXPECT_TRUE(has(r.out, "largest context: 0")) << r.out;
}

TEST(PlanCli, SearchPicksTp2) {
  auto r = tandem({"plan", "--model", "llama-3.1-405b", "--dtype", "q4_0", "--search"});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  const size_t tp = r.out.find("  tp=2 pp=1  fits: yes"), pp = r.out.find("  tp=1 pp=2  fits: yes");
  ASSERT_NE(tp, std::string::npos) << r.out;
  ASSERT_NE(pp, std::string::npos) << r.out;
  EXPECT_LT(tp, pp);
  EXPECT_TRUE(has(r.out, "best: tp=2 pp=1")) << r.out;
}

TEST(PlanCli, ReadsACheckpointHeaderAndConfig) {
  auto r = tandem({"plan", "--set", "parallel.tp=1", "--set", "parallel.pp=2", "--model",
                   testing::bundled_checkpoint(), "--node-memory-gb", "1", "--headroom-gb", "0",
                   "--overhead-gb", "0.5", "--kv-dtype", "f32"});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "dim 64, 5 layers, 8 heads (4 KV)")) << r.out;
  EXPECT_TRUE(has(r.out, "tp=1 pp=2")) << r.out;
  EXPECT_TRUE(has(r.out, "largest context: 512 (the model's own limit binds")) << r.out;
  // A plan reads shapes only: a checkpoint without a tokenizer beside it plans the same.
  testing::TempDir alone;
  std::filesystem::copy_file(testing::bundled_checkpoint(), alone.file("m.bin"));
  auto lone = tandem({"plan", "--model", alone.file("m.bin"), "--set", "parallel.tp=1", "--set", "parallel.pp=2"});
  EXPECT_EQ(lone.exit_code, 0) << lone.err << lone.out;
  EXPECT_TRUE(has(lone.out, "dim 64, 5 layers, 8 heads (4 KV)")) << lone.out;
}

// A Mistral-style model whose sliding window (24) is shorter than its
// trained context (64): the window is the default, the limit, and named.
TEST(PlanCli, ASlidingWindowBindsAndIsNamed) {
  testing::TempDir dir;
  testing::ArchSpec spec;
  spec.arch = "mistral";
  spec.sliding_window = 24;
  ASSERT_TRUE(testing::write_arch_gguf(spec, testing::random_arch_model(spec, 5), dir.file("m.gguf")).ok());
  auto r = tandem({"plan", "--model", dir.file("m.gguf"), "--set", "parallel.tp=1", "--set", "parallel.pp=1",
                   "--set", "cluster.nodes=[{host: a}]"});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "context 24,")) << r.out;
  EXPECT_TRUE(has(r.out, "largest context: 24 (the model's sliding window binds")) << r.out;
  auto longer = tandem({"plan", "--model", dir.file("m.gguf"), "--set", "parallel.tp=1", "--set", "parallel.pp=1",
                        "--set", "cluster.nodes=[{host: a}]", "--context", "32"});
  EXPECT_EQ(longer.exit_code, 2) << longer.err << longer.out;
  EXPECT_TRUE(has(longer.err, "exceeds the model's sliding attention window of 24")) << longer.err;
}

TEST(PlanCli, NoPlanExitsTwo) {
  struct Case {
    std::vector<std::string> args;
    std::string in_stderr;
  };
  const Case cases[] = {
      {{"plan", "--model", "qwen3-235b-a22b"}, "MoE comes later"},
      {{"plan", "--model", "no-such-model"}, "neither a preset"},
      {{"plan", "--model", "stories260K", "--set", "parallel.tp=3",
        "--set", "cluster.nodes=[{host: a}, {host: b}, {host: c}]"}, "tp=3 divides neither"},
      {{"plan", "--model", "stories260K", "--context", "100000"}, "outside [1, 512]"},
      {{"plan", "--model", "stories260K", "--context", "-5"}, "--context"},
      {{"plan", "--model", "stories260K", "--dtype", "q5_k"}, "--dtype q5_k: unknown"},
      {{"plan", "--model", "stories260K", "--node-memory-gb", "0"}, "--node-memory-gb"},
      {{"plan", "--no-such-flag"}, "no-such-flag"},
  };
  for (const Case& c : cases) {
    auto r = tandem(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.in_stderr << "\n" << r.err << r.out;
    EXPECT_TRUE(has(r.err, c.in_stderr)) << r.err;
  }
}

}  // namespace
}  // namespace tandem
