// The sharded forward against the single-process forward of the same
// checkpoint: every layout's ranks run as threads of this process, joined by
// the in-process communicator, each loading only its own slices; rank 0's
// logits (whole, top-k, argmax) must match the unsharded model's within 1e-5
// of the logits' scale, for prompts run in several chunks (so pipeline stages
// overlap) and then token by token.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "collectives/collectives.h"
#include "collectives/model_comm.h"
#include "runtime/llama2c_loader.h"
#include "runtime/llama2c_writer.h"
#include "runtime/llama_model.h"
#include "runtime/synthetic.h"
#include "sharding/shard_loader.h"
#include "tests/unit/shard_test_shapes.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

using sharding::ShardPlan;
using testing::TempDir;

constexpr auto kStepTimeout = std::chrono::seconds(30);

// What a sequence of forwards gave on rank 0: per forward, the logits, the
// top-k candidates and the argmax.
struct Trace {
  std::vector<std::vector<float>> logits;
  std::vector<std::vector<TokenLogit>> top_k;
  std::vector<int> argmax;
};

// A prompt run at position 0, then tokens one at a time; each step three
// ways (a forward rewrites the same positions, so repeating one is harmless).
struct Script {
  std::vector<int> prompt;
  std::vector<int> continuation;
};

constexpr int kTopK = 5;

Status run_script(LlamaModel& model, const Script& script, Trace& trace) {
  const bool leader = model.leader();
  std::vector<float> logits(leader ? model.config().vocab_size : 0);
  auto step = [&](std::span<const int> tokens, int64_t pos) -> Status {
    TANDEM_RETURN_IF_ERROR(model.forward(tokens, pos, logits));
    std::vector<TokenLogit> best;
    TANDEM_RETURN_IF_ERROR(model.forward_top_k(tokens, pos, kTopK, best));
    TANDEM_ASSIGN_OR_RETURN(int next, model.forward_argmax(tokens, pos));
    if (leader) {
      trace.logits.push_back(logits);
      trace.top_k.push_back(best);
      trace.argmax.push_back(next);
    }
    return Status::Ok();
  };
  TANDEM_RETURN_IF_ERROR(step(script.prompt, 0));
  int64_t pos = static_cast<int64_t>(script.prompt.size());
  for (int t : script.continuation) TANDEM_RETURN_IF_ERROR(step(std::span<const int>(&t, 1), pos++));
  return Status::Ok();
}

LlamaModelOptions options() {
  LlamaModelOptions o;
  o.max_batch = 3;  // prompts in several chunks
  return o;
}

Trace single_process(const std::string& path, const Script& script) {
  Result<LlamaWeights> w = load_llama2c(path);
  EXPECT_TRUE(w.ok()) << w.status().to_string();
  auto backend = make_backend(BackendOptions{BackendKind::kCpu, 1, 0});
  auto model = LlamaModel::create(**backend, std::move(*w), options());
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  Trace trace;
  EXPECT_TRUE(run_script(**model, script, trace).ok());
  return trace;
}

Trace sharded(const std::string& path, int tp, int pp, const Script& script) {
  auto shape = load_llama2c(path);
  auto plan = sharding::make_shard_plan(shape->config, tp, pp, {});
  EXPECT_TRUE(plan.ok()) << plan.status().to_string();
  auto comms = collectives::make_local_group(tp * pp);
  Trace trace;
  std::vector<std::thread> threads;
  for (int r = 0; r < tp * pp; ++r) {
    threads.emplace_back([&, r] {
      auto fail = [&](const Status& s) {
        ADD_FAILURE() << "rank " << r << ": " << s.to_string();
        comms[r]->abort(s.message());  // the others then fail instead of waiting
      };
      sharding::ShardLoadReport report;
      auto weights = sharding::load_llama2c_shard(path, *plan, r, &report);
      if (!weights.ok()) return fail(weights.status());
      auto backend = make_backend(BackendOptions{BackendKind::kCpu, 1, 0});
      auto comm = collectives::make_model_comm(*comms[r], *comms[r], **backend, tp, pp, kStepTimeout);
      if (!comm.ok()) return fail(comm.status());
      auto model = LlamaModel::create(**backend, std::move(*weights), options(), comm->get());
      if (!model.ok()) return fail(model.status());
      EXPECT_EQ((*model)->weight_bytes(), plan->ranks[r].weight_bytes) << "rank " << r;
      Trace mine;
      if (Status s = run_script(**model, script, mine); !s.ok()) return fail(s);
      if (r == 0) trace = std::move(mine);
    });
  }
  for (auto& t : threads) t.join();
  return trace;
}

void expect_same(const Trace& want, const Trace& got, const std::string& what) {
  ASSERT_EQ(got.logits.size(), want.logits.size()) << what;
  for (size_t step = 0; step < want.logits.size(); ++step) {
    const std::vector<float>& a = want.logits[step];
    const std::vector<float>& b = got.logits[step];
    ASSERT_EQ(b.size(), a.size());
    float scale = 0;
    for (float v : a) scale = std::max(scale, std::fabs(v));
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]) / scale);
    EXPECT_LE(worst, 1e-5) << what << " step " << step;
    EXPECT_EQ(got.argmax[step], want.argmax[step]) << what << " step " << step;
    ASSERT_EQ(got.top_k[step].size(), want.top_k[step].size()) << what << " step " << step;
    for (size_t j = 0; j < want.top_k[step].size(); ++j) {
      EXPECT_EQ(got.top_k[step][j].id, want.top_k[step][j].id) << what << " step " << step << " #" << j;
      EXPECT_NEAR(got.top_k[step][j].logit, want.top_k[step][j].logit, 1e-5 * scale);
    }
    // The candidates are the logits' own best, in order.
    EXPECT_EQ(want.top_k[step][0].id, want.argmax[step]);
  }
}

std::vector<Script> scripts(int vocab) {
  return {{{1, 7, 300 % vocab, 42, 999 % vocab, 5, 6}, {17, 900 % vocab, 3}},
          {{1}, {vocab - 1, 0, 250 % vocab}},
          {{vocab - 1, vocab - 2, 1, 1, 2, 3, 5, 8, 13, 21}, {34}}};
}

class ShardedForward : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(ShardedForward, GqaLogitsMatchTheSingleProcess) {
  const auto [tp, pp] = GetParam();
  TempDir dir;
  for (bool shared : {false, true}) {
    const std::string path = dir.file(shared ? "shared.bin" : "own.bin");
    auto weights = make_synthetic_weights(sharding::test_shapes::gqa_8_2(shared), 5);
    ASSERT_TRUE(weights.ok());
    ASSERT_TRUE(write_llama2c(*weights, path).ok());
    for (const Script& script : scripts(static_cast<int>(weights->config.vocab_size))) {
      const std::string what = "tp=" + std::to_string(tp) + " pp=" + std::to_string(pp) +
                               (shared ? " shared classifier" : "") + " prompt of " +
                               std::to_string(script.prompt.size());
      expect_same(single_process(path, script), sharded(path, tp, pp, script), what);
    }
  }
}

// tp=4 over 2 KV heads replicates each KV head on two ranks; pp=3 runs 4 layers
// as 2 + 1 + 1 stages.
INSTANTIATE_TEST_SUITE_P(Layouts, ShardedForward,
                         ::testing::Values(std::pair{2, 1}, std::pair{1, 2}, std::pair{4, 1}, std::pair{1, 3},
                                           std::pair{8, 1}),
                         [](const auto& p) {
                           return "tp" + std::to_string(p.param.first) + "_pp" +
                                  std::to_string(p.param.second);
                         });

// Rank 0 of a tp=2 split of the GQA shape, its peer never started.
class ShardedForwardModel : public ::testing::Test {
 protected:
  void SetUp() override {
    auto weights = make_synthetic_weights(sharding::test_shapes::gqa_8_2(), 5);
    ASSERT_TRUE(weights.ok());
    ASSERT_TRUE(write_llama2c(*weights, path_).ok());
    auto plan = sharding::make_shard_plan(weights->config, 2, 1, {});
    ASSERT_TRUE(plan.ok());
    plan_ = *plan;
    vocab_ = weights->config.vocab_size;
    ASSERT_TRUE(backend_.ok());
  }
  Result<std::unique_ptr<ModelComm>> comm(std::chrono::milliseconds timeout, int tp = 2) {
    return collectives::make_model_comm(*comms_[0], *comms_[0], **backend_, tp, 1, timeout);
  }

  TempDir dir_;
  const std::string path_ = dir_.file("m.bin");
  sharding::ShardPlan plan_;
  int64_t vocab_ = 0;
  std::vector<std::unique_ptr<collectives::Communicator>> comms_ = collectives::make_local_group(2);
  Result<std::unique_ptr<Backend>> backend_ = make_backend(BackendOptions{BackendKind::kCpu, 1, 0});
};

TEST_F(ShardedForwardModel, RefusesShardsThatDisagreeWithTheirSplit) {
  auto comm = this->comm(kStepTimeout);
  ASSERT_TRUE(comm.ok());
  auto shard = sharding::load_llama2c_shard(path_, plan_, 0);
  ASSERT_TRUE(shard.ok());
  Backend& backend = **backend_;
  auto no_comm = LlamaModel::create(backend, *shard, options());
  EXPECT_EQ(no_comm.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_comm.status().message().find("needs a ModelComm"), std::string::npos);

  LlamaWeights wrong = *shard;
  wrong.layers[1].w_down = wrong.layers[1].w_gate;  // [hidden/2, dim] where [dim, hidden/2] belongs
  auto bad = LlamaModel::create(backend, wrong, options(), comm->get());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("layers.1.w_down"), std::string::npos) << bad.status().message();

  // 24 query heads in groups over 8 KV heads, split tp=3: 8 query heads and
  // 2 KV heads a rank add up, but rank 0's query heads 0-7 read KV heads 0-2.
  LlamaWeights mixed = *shard;
  mixed.config.dim = 96;
  mixed.config.n_heads = 24;
  mixed.config.n_kv_heads = 8;
  mixed.shard.tp = 3;
  mixed.shard.n_heads = 8;
  mixed.shard.n_kv_heads = 2;
  auto groups = LlamaModel::create(backend, mixed, options(), comm->get());
  EXPECT_EQ(groups.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(groups.status().message().find("tp=3 neither divides the 8 KV heads"), std::string::npos)
      << groups.status().message();

  LlamaWeights both = *shard;
  both.shard.pp = 2;
  auto unsupported = LlamaModel::create(backend, both, options(), comm->get());
  EXPECT_EQ(unsupported.status().code(), StatusCode::kUnimplemented) << unsupported.status().to_string();

  EXPECT_EQ(this->comm(kStepTimeout, /*tp=*/1).status().code(), StatusCode::kInvalidArgument);
}

// A rank that never arrives: the others' forward fails by the deadline
// instead of waiting for ever.
TEST_F(ShardedForwardModel, AMissingPeerIsAnErrorNotAHang) {
  auto comm = this->comm(std::chrono::milliseconds(300));
  ASSERT_TRUE(comm.ok());
  auto model = LlamaModel::create(**backend_, *sharding::load_llama2c_shard(path_, plan_, 0), options(), comm->get());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  std::vector<float> logits(vocab_);
  const int tokens[] = {1, 2};
  const Status s = (*model)->forward(tokens, 0, logits);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.to_string();
}

}  // namespace
}  // namespace tandem
