// The batched, paged forward sharded: tp=2 and pp=2 ranks as threads of
// this process (in-process communicator), each loading only its slices,
// against the unsharded batch; and launcher/lockstep's batch command across
// two ranks, including a follower refusing a malformed command.
#include <gtest/gtest.h>

#include <array>
#include <thread>

#include "collectives/collectives.h"
#include "collectives/model_comm.h"
#include "launcher/lockstep.h"
#include "runtime/llama2c_loader.h"
#include "runtime/llama2c_writer.h"
#include "runtime/synthetic.h"
#include "sharding/shard_loader.h"
#include "tests/unit/paged_test_util.h"
#include "tests/unit/shard_test_shapes.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

using paged_test::BatchScript;
using paged_test::max_relative_error;
constexpr auto kStepTimeout = std::chrono::seconds(30);

LlamaModelOptions options() {
  LlamaModelOptions o;
  o.max_batch = 24;
  o.kv_blocks = 30;
  o.kv_block_size = 4;
  return o;
}

// What rank 0 got running the script: logits, then argmax ids.
struct Got {
  std::vector<std::vector<float>> logits;
  std::vector<int32_t> ids;
};

Got unsharded(const std::string& path, const BatchScript& script) {
  Got got;
  auto w = load_llama2c(path);
  auto backend = make_backend(BackendOptions{BackendKind::kCpu, 1, 0});
  auto model = LlamaModel::create(**backend, std::move(*w), options());
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  BlockAllocator allocator(30);
  paged_test::shuffle_pool(allocator, 2);
  EXPECT_TRUE(script.run(**model, allocator, got.logits, &got.ids).ok());
  return got;
}

// Every rank runs `body` on its model, as threads joined by a local group.
template <typename Body>
void on_ranks(const std::string& path, int tp, int pp, Body body) {
  auto shape = load_llama2c(path);
  auto plan = sharding::make_shard_plan(shape->config, tp, pp, {});
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  auto comms = collectives::make_local_group(tp * pp);
  std::vector<std::thread> threads;
  for (int r = 0; r < tp * pp; ++r) {
    threads.emplace_back([&, r] {
      auto fail = [&](const Status& s) {
        ADD_FAILURE() << "rank " << r << ": " << s.to_string();
        comms[r]->abort(s.message());
      };
      auto weights = sharding::load_llama2c_shard(path, *plan, r);
      if (!weights.ok()) return fail(weights.status());
      auto backend = make_backend(BackendOptions{BackendKind::kCpu, 1, 0});
      auto comm = collectives::make_model_comm(*comms[r], *comms[r], **backend, tp, pp, kStepTimeout);
      if (!comm.ok()) return fail(comm.status());
      auto model = LlamaModel::create(**backend, std::move(*weights), options(), comm->get());
      if (!model.ok()) return fail(model.status());
      if (Status s = body(r, **model, *comms[r]); !s.ok()) return fail(s);
    });
  }
  for (auto& t : threads) t.join();
}

class PagedLockstep : public ::testing::Test {
 protected:
  void SetUp() override {
    auto weights = make_synthetic_weights(sharding::test_shapes::gqa_8_2(), 7);
    ASSERT_TRUE(weights.ok());
    ASSERT_TRUE(write_llama2c(*weights, path_).ok());
  }
  testing::TempDir dir_;
  const std::string path_ = dir_.file("m.bin");
};

class PagedSharded : public PagedLockstep, public ::testing::WithParamInterface<std::pair<int, int>> {};

TEST_P(PagedSharded, BatchEqualsTheUnshardedBatch) {
  const auto [tp, pp] = GetParam();
  const BatchScript script = paged_test::mixed_script(1001, 21);
  const Got want = unsharded(path_, script);
  Got got;
  on_ranks(path_, tp, pp, [&](int rank, LlamaModel& model, collectives::Communicator&) {
    BlockAllocator allocator(30);  // every rank's scheduler-free copy of the same tables
    paged_test::shuffle_pool(allocator, 2);
    Got mine;
    TANDEM_RETURN_IF_ERROR(script.run(model, allocator, mine.logits, &mine.ids));
    if (rank == 0) got = std::move(mine);
    return Status::Ok();
  });
  ASSERT_EQ(got.logits.size(), want.logits.size());
  for (size_t i = 0; i < want.logits.size(); ++i)
    EXPECT_LE(max_relative_error(want.logits[i], got.logits[i]), 1e-5) << i;
  EXPECT_EQ(got.ids, want.ids);
}

INSTANTIATE_TEST_SUITE_P(Layouts, PagedSharded, ::testing::Values(std::pair{2, 1}, std::pair{1, 2}, std::pair{4, 1}),
                         [](const auto& p) {
                           return "tp" + std::to_string(p.param.first) + "_pp" + std::to_string(p.param.second);
                         });

// Rank 0 leads a tp=2 job through Lockstep's batch commands; rank 1 follows.
TEST_F(PagedLockstep, RunsBatchesOnEveryRank) {
  const BatchScript script = paged_test::mixed_script(1001, 5);
  const Got want = unsharded(path_, script);
  Got got;
  on_ranks(path_, 2, 1, [&](int rank, LlamaModel& model, collectives::Communicator& comm) -> Status {
    launcher::Lockstep step(comm, model, kStepTimeout);
    if (rank != 0) return step.follow([] { return false; });
    BlockAllocator allocator(30);
    paged_test::shuffle_pool(allocator, 2);
    const int64_t vocab = model.config().vocab_size, bs = model.paged_kv().block_size;
    std::map<int, std::vector<int32_t>> tables;
    for (const auto& parts : script.steps) {
      std::vector<SequenceStep> batch;
      for (const auto& p : parts) {
        auto& table = tables[p.seq];
        const int64_t need = kv_blocks_for(p.start_pos + static_cast<int64_t>(p.tokens.size()), bs);
        if (need > static_cast<int64_t>(table.size()))
          TANDEM_RETURN_IF_ERROR(allocator.allocate(need - static_cast<int64_t>(table.size()), table));
        batch.push_back(SequenceStep{p.tokens, p.start_pos, table, p.want_logits});
      }
      int64_t wanted = 0;
      for (const auto& s : batch) wanted += s.want_logits;
      std::vector<float> logits(wanted * vocab);
      TANDEM_RETURN_IF_ERROR(step.forward_batch(batch, logits));
      for (int64_t i = 0; i < wanted; ++i) got.logits.emplace_back(logits.begin() + i * vocab, logits.begin() + (i + 1) * vocab);
      std::vector<int32_t> ids(wanted);
      TANDEM_RETURN_IF_ERROR(step.forward_batch_argmax(batch, ids));
      got.ids.insert(got.ids.end(), ids.begin(), ids.end());
      // A bad step fails on rank 0 before it is announced: the follower never hears of it.
      const std::vector<int> outside = {5000};
      const std::vector<int32_t> any_block = {0};
      const SequenceStep bad{outside, 0, any_block, true};
      std::vector<float> one(vocab);
      if (step.forward_batch(std::span(&bad, 1), one).code() != StatusCode::kInvalidArgument)
        return Internal("a token outside the vocabulary was announced");
      // So does a start whose end wraps past INT64_MAX (the follower would
      // refuse it as a malformed command and end the job).
      const std::vector<int> token = {1};
      if (step.forward(token, INT64_MAX, one).code() != StatusCode::kOutOfRange)
        return Internal("a start position past the context was announced");
      // And a good step whose result span is the wrong size: refused before the
      // announcement, or the follower would wait in its exchanges until the deadline.
      std::vector<float> short_logits(wanted * vocab + 1);
      if (step.forward_batch(batch, short_logits).code() != StatusCode::kInvalidArgument)
        return Internal("a step with too many logits floats was announced");
      std::vector<int32_t> short_ids(wanted + 1);
      if (step.forward_batch_argmax(batch, short_ids).code() != StatusCode::kInvalidArgument)
        return Internal("a step with room for too many token ids was announced");
      for (const auto& p : parts)
        if (p.finishes) allocator.release(tables[p.seq]);
    }
    return step.shutdown();
  });
  ASSERT_EQ(got.logits.size(), want.logits.size());
  for (size_t i = 0; i < want.logits.size(); ++i)
    EXPECT_LE(max_relative_error(want.logits[i], got.logits[i]), 1e-5) << i;
  EXPECT_EQ(got.ids, want.ids);
}

// Malformed batch commands, sent by hand as rank 0: the follower refuses
// each with DataLoss before it sizes anything by the bad count.
TEST_F(PagedLockstep, AFollowerRefusesAMalformedCommand) {
  struct Case {
    std::array<int64_t, 6> header;
    std::vector<int64_t> fields;  // sent when the header passes
    std::string words;
  };
  const std::vector<Case> cases = {
      {{3, 3, 0, 1, 0, 1}, {}, "sequences outside"},
      {{3, 3, 1, 1000000, 0, 1}, {}, "tokens outside"},
      {{3, 3, 1, 1, 0, 1 << 30}, {}, "block ids outside"},
      {{3, 3, 1, 1, 7, 1}, {}, "result 7"},
      {{3, 3, 1, 2, 0, 1}, {2, 31, 1, 1}, "sequence 0 is 2 tokens at 31"},  // past the context of 32
      {{3, 3, 1, 2, 0, 1}, {2, 0, 1, 2}, "sequence 0 is 2 tokens at 0 in 2 blocks"},
      {{3, 3, 2, 3, 0, 2}, {1, 0, 1, 1, 1, 0, 1, 1}, "do not add up"},
      {{3, 3, int64_t{1} << 62, 1, 0, 1}, {}, "sequences outside"},  // bounded before any product of it
      // One-sequence commands: refused from the header, before any token is awaited.
      {{3, 1, 30, 8, 0, 0}, {}, "8 tokens at 30"},  // past the context of 32
      {{3, 1, INT64_MAX - 2, 8, 0, 0}, {}, "8 tokens at 9223372036854775805"},  // start_pos + n wraps
  };
  for (const Case& c : cases) {
    on_ranks(path_, 2, 1, [&](int rank, LlamaModel& model, collectives::Communicator& comm) -> Status {
      if (rank == 1) {
        launcher::Lockstep step(comm, model, std::chrono::milliseconds(2000));
        const Status s = step.follow([] { return false; });
        if (s.code() != StatusCode::kDataLoss || s.message().find(c.words) == std::string::npos)
          return Internal("expected DataLoss naming '" + c.words + "', got " + s.to_string());
        return Status::Ok();
      }
      std::array<int64_t, 6> header = c.header;
      const Deadline deadline = deadline_after(kStepTimeout);
      TANDEM_RETURN_IF_ERROR(comm.broadcast(header.data(), header.size(), DType::kI64, 0, deadline));
      if (c.fields.empty()) return Status::Ok();
      std::vector<int64_t> fields = c.fields;
      return comm.broadcast(fields.data(), fields.size(), DType::kI64, 0, deadline);
    });
  }
  // A block id outside the pool, in a command that adds up.
  on_ranks(path_, 2, 1, [&](int rank, LlamaModel& model, collectives::Communicator& comm) -> Status {
    if (rank == 1) {
      launcher::Lockstep step(comm, model, std::chrono::milliseconds(2000));
      const Status s = step.follow([] { return false; });
      if (s.code() != StatusCode::kDataLoss || s.message().find("block id 30 outside the pool") == std::string::npos)
        return Internal("got " + s.to_string());
      return Status::Ok();
    }
    std::array<int64_t, 6> header = {3, 3, 1, 1, 0, 1};
    std::vector<int64_t> fields = {1, 0, 1, 1};
    std::vector<int32_t> tokens = {5}, table = {30};
    const Deadline deadline = deadline_after(kStepTimeout);
    TANDEM_RETURN_IF_ERROR(comm.broadcast(header.data(), header.size(), DType::kI64, 0, deadline));
    TANDEM_RETURN_IF_ERROR(comm.broadcast(fields.data(), fields.size(), DType::kI64, 0, deadline));
    TANDEM_RETURN_IF_ERROR(comm.broadcast(tokens.data(), tokens.size(), DType::kI32, 0, deadline));
    return comm.broadcast(table.data(), table.size(), DType::kI32, 0, deadline);
  });
}

}  // namespace
}  // namespace tandem
