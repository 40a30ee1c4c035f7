// TrainModel split over tp ranks (threads meeting through the test comm)
// against the same model at tp=1: the same initialisation bit for bit, the
// same loss, the same gradients within f32 reordering, and each rank
// holding about 1/tp of the weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>

#include "runtime/train/train_model.h"
#include "tests/unit/train_model_test_util.h"
#include "tests/unit/train_test_comm.h"

namespace tandem::train {
namespace {

constexpr int64_t kBatch = 2;
constexpr uint64_t kSeed = 2024;

struct RankResult {
  std::vector<ParamTensor> tensors;
  std::vector<float> gathered_params;
  std::vector<float> grads;
  double loss = 0;
  Status status;
};

struct Case {
  TrainShape shape;
  int tp;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "tp=" << c.tp << " of dim " << c.shape.dim << ", " << c.shape.n_heads << " heads, " << c.shape.n_kv_heads
      << " KV heads, hidden " << c.shape.hidden_dim << ", vocab " << c.shape.vocab_size;
}

class TrainModelTensorParallel : public ::testing::TestWithParam<Case> {};

RankResult run_rank(const TrainShape& shape, TensorParallelRank tp, TrainComm* comm, const std::vector<int>& inputs,
                    const std::vector<int>& targets) {
  RankResult out;
  auto model = TrainModel::create(shape, tp, comm, nullptr, kBatch);
  if (!model.ok()) {
    out.status = model.status();
    return out;
  }
  TrainModel& m = **model;
  m.init(kSeed);
  out.tensors = m.tensors();
  out.status = m.gather_full(&out.gathered_params);
  if (!out.status.ok()) return out;
  m.zero_grads();
  auto loss = m.forward_backward(inputs, targets, kBatch, 1.0f);
  if (!loss.ok()) {
    out.status = loss.status();
    return out;
  }
  out.loss = *loss;
  out.grads.assign(m.grads().begin(), m.grads().end());
  return out;
}

TEST_P(TrainModelTensorParallel, EqualsTheUnsplitModel) {
  const auto [shape, tp] = GetParam();
  const size_t tokens = static_cast<size_t>(kBatch * shape.seq_len);
  const std::vector<int> inputs = testing::random_tokens(tokens, shape.vocab_size, 5);
  const std::vector<int> targets = testing::random_tokens(tokens, shape.vocab_size, 6);

  const RankResult whole = run_rank(shape, {}, nullptr, inputs, targets);
  ASSERT_TRUE(whole.status.ok()) << whole.status.to_string();
  const std::vector<ParamTensor> layout = full_layout(shape);

  testing::TestCommGroup group(tp);
  std::vector<RankResult> ranks(static_cast<size_t>(tp));
  testing::run_ranks(tp, [&](int r) {
    ranks[static_cast<size_t>(r)] = run_rank(shape, {tp, r}, &group.rank(r), inputs, targets);
  });

  std::vector<float> gathered_grads(whole.grads.size(), NAN);
  for (int r = 0; r < tp; ++r) {
    const RankResult& rank = ranks[static_cast<size_t>(r)];
    ASSERT_TRUE(rank.status.ok()) << "rank " << r << ": " << rank.status.to_string();
    // Bitwise: the init depends on (seed, tensor, full row, full column) only.
    EXPECT_TRUE(rank.gathered_params == whole.gathered_params) << "rank " << r;
    // Every rank adds the same reduced statistics: the same loss, bit for bit.
    EXPECT_EQ(rank.loss, ranks[0].loss) << "rank " << r;
    testing::place_shard(rank.tensors, layout, rank.grads, gathered_grads);
    for (size_t i = 0; i < rank.tensors.size(); ++i) {
      const ParamTensor& t = rank.tensors[i];
      if (!t.replicated) continue;
      const float* mine = rank.grads.data() + t.offset;
      const float* rank0 = ranks[0].grads.data() + ranks[0].tensors[i].offset;  // shards differ in size
      EXPECT_TRUE(std::equal(mine, mine + t.numel(), rank0)) << t.name << " differs on rank " << r;
    }
  }
  EXPECT_NEAR(ranks[0].loss, whole.loss, 1e-6 * whole.loss);
  for (const ParamTensor& t : layout) {
    const float scale = testing::max_abs(whole.grads.data() + t.offset, t.numel());
    ASSERT_GT(scale, 0.0f) << t.name;
    for (int64_t i = 0; i < t.numel(); ++i)
      ASSERT_NEAR(gathered_grads[t.offset + i], whole.grads[t.offset + i], 1e-5f * scale) << t.name << "[" << i << "]";
  }

  // The matrices are split (the shards partition them, none much above
  // 1/tp); only the norms are held whole on every rank.
  int64_t full_matrices = 0, split_sum = 0, largest = 0;
  for (const ParamTensor& t : layout)
    if (!t.replicated) full_matrices += t.numel();
  for (const RankResult& rank : ranks) {
    int64_t mine = 0;
    for (const ParamTensor& t : rank.tensors)
      if (!t.replicated) mine += t.numel();
    split_sum += mine;
    largest = std::max(largest, mine);
  }
  EXPECT_EQ(split_sum, full_matrices);
  EXPECT_LE(static_cast<double>(largest), 1.1 * static_cast<double>(full_matrices) / tp);
}

std::string case_name(const ::testing::TestParamInfo<Case>& param_info) {
  const Case& c = param_info.param;
  return (c.shape.n_kv_heads < c.shape.n_heads ? "gqa_tp" : "mha_tp") + std::to_string(c.tp);
}

INSTANTIATE_TEST_SUITE_P(Splits, TrainModelTensorParallel,
                         ::testing::Values(Case{testing::tiny_gqa_shape(), 2}, Case{testing::tiny_mha_shape(), 2},
                                           Case{testing::tiny_mha_shape(), 4}),
                         case_name);

// A failing exchange comes back as the step's error, on the rank that saw it.
class FailingComm final : public TrainComm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  Status all_reduce_sum(std::span<float>) override { return Unavailable("peer 1: connection reset"); }
  Status all_reduce_max(std::span<float>) override { return Unavailable("peer 1: connection reset"); }
  Status all_gather(const void*, void*, size_t) override { return Unavailable("peer 1: connection reset"); }
};

TEST(TrainModelTensorParallelErrors, CommFailuresAreReturnedAsIs) {
  const TrainShape shape = testing::tiny_gqa_shape();
  FailingComm comm;
  auto model = TrainModel::create(shape, {2, 0}, &comm, nullptr, 1);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  (*model)->init(1);
  const std::vector<int> tokens(static_cast<size_t>(shape.seq_len), 1);
  auto loss = (*model)->forward_backward(tokens, tokens, 1, 1.0f);
  EXPECT_EQ(loss.status().code(), StatusCode::kUnavailable);
  std::vector<float> full;
  EXPECT_EQ((*model)->gather_full(&full).code(), StatusCode::kUnavailable);
  // A comm of the wrong size for the split is the caller's mistake.
  EXPECT_EQ(TrainModel::create(shape, {2, 1}, &comm, nullptr, 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TrainModel::create(shape, {2, 0}, nullptr, nullptr, 1).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::train
