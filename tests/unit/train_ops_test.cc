// Every training op's backward against central finite differences of its
// forward, in double, on small odd shapes: rows 6 = batch 2 x seq 3, n_in 5,
// n_out 7, 4 query heads on 2 KV heads of head_dim 4, vocab 9. The objective
// is L = sum(out * R) for a fixed random R, so the backward fed dout = R must
// return dL/d(input) for every input and weight element (tolerances in
// train_test_util.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "runtime/train/ops.h"
#include "tests/unit/train_test_util.h"

namespace tandem::train {
namespace {

using testing::expect_gradient;
using testing::random_vector;
using testing::weighted_sum;

constexpr int64_t kBatch = 2, kSeq = 3, kRows = kBatch * kSeq;
constexpr int64_t kIn = 5, kOut = 7;
constexpr int64_t kHeads = 4, kKvHeads = 2, kHeadDim = 4;
constexpr int64_t kVocab = 9;

TEST(TrainOpsGradient, Matmul) {
  std::mt19937 rng(1);
  std::vector<double> x = random_vector(kRows * kIn, rng), w = random_vector(kOut * kIn, rng);
  const std::vector<double> r = random_vector(kRows * kOut, rng);
  std::vector<double> dx(x.size(), 99.0), dw(w.size(), 0.0);  // dx overwritten, dw accumulated from 0
  matmul_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), kRows, kIn, kOut, false, nullptr);
  auto objective = [&] {
    std::vector<double> out(kRows * kOut);
    matmul_forward(out.data(), x.data(), w.data(), kRows, kIn, kOut, nullptr);
    return weighted_sum(out, r);
  };
  expect_gradient("dx", x, dx, objective);
  expect_gradient("dw", w, dw, objective);
}

TEST(TrainOpsGradient, MatmulAccumulatesDwAndOptionallyDx) {
  std::mt19937 rng(2);
  const std::vector<double> x = random_vector(kRows * kIn, rng), w = random_vector(kOut * kIn, rng);
  const std::vector<double> r = random_vector(kRows * kOut, rng);
  std::vector<double> dx(x.size(), 0.0), dw(w.size(), 0.0);
  matmul_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), kRows, kIn, kOut, false, nullptr);

  const std::vector<double> dx_before = random_vector(x.size(), rng),
                            dw_before = random_vector(w.size(), rng);
  std::vector<double> dx_sum = dx_before, dw_sum = dw_before;
  matmul_backward(dx_sum.data(), dw_sum.data(), r.data(), x.data(), w.data(), kRows, kIn, kOut, true,
                  nullptr);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_NEAR(dx_sum[i], dx_before[i] + dx[i], 1e-14) << i;
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw_sum[i], dw_before[i] + dw[i], 1e-14) << i;

  // No dx wanted: dw still accumulates.
  std::vector<double> dw_only = dw_before;
  matmul_backward<double>(nullptr, dw_only.data(), r.data(), x.data(), w.data(), kRows, kIn, kOut, false,
                          nullptr);
  EXPECT_EQ(dw_only, dw_sum);
}

TEST(TrainOpsGradient, Rmsnorm) {
  std::mt19937 rng(3);
  std::vector<double> x = random_vector(kRows * kIn, rng), w = random_vector(kIn, rng, 0.5, 1.5);
  const std::vector<double> r = random_vector(kRows * kIn, rng);
  const double eps = 1e-5;
  std::vector<double> out(x.size()), rstd(kRows);
  rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), kRows, kIn, eps);
  std::vector<double> dx(x.size(), 99.0), dw(w.size(), 0.0);
  rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), kRows, kIn);
  auto objective = [&] {
    std::vector<double> o(x.size()), s(kRows);
    rmsnorm_forward(o.data(), s.data(), x.data(), w.data(), kRows, kIn, eps);
    return weighted_sum(o, r);
  };
  expect_gradient("dx", x, dx, objective);
  expect_gradient("dw", w, dw, objective);
}

TEST(TrainOpsGradient, Rope) {
  std::mt19937 rng(4);
  const int64_t width = kHeads * kHeadDim;
  std::vector<double> v = random_vector(kRows * width, rng);
  const std::vector<double> r = random_vector(kRows * width, rng);
  const double theta = 10.0;  // angles of a few radians at pos 2 for both pairs
  std::vector<double> dv = r;
  rope_backward(dv.data(), kRows, kSeq, kHeads, kHeadDim, theta);
  auto objective = [&] {
    std::vector<double> rotated = v;
    rope_forward(rotated.data(), kRows, kSeq, kHeads, kHeadDim, theta);
    return weighted_sum(rotated, r);
  };
  expect_gradient("dv", v, dv, objective);
}

TEST(TrainOpsGradient, Attention) {
  std::mt19937 rng(5);
  const AttentionDims dims{
      .batch = kBatch, .seq = kSeq, .n_heads = kHeads, .n_kv_heads = kKvHeads, .head_dim = kHeadDim};
  const int64_t q_width = kHeads * kHeadDim, kv_width = kKvHeads * kHeadDim;
  std::vector<double> q = random_vector(kRows * q_width, rng, -2.0, 2.0);
  std::vector<double> k = random_vector(kRows * kv_width, rng, -2.0, 2.0);
  std::vector<double> v = random_vector(kRows * kv_width, rng);
  const std::vector<double> r = random_vector(kRows * q_width, rng);
  std::vector<double> out(q.size()), probs(dims.probs_size());
  attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), dims, nullptr);
  std::vector<double> dq(q.size(), 99.0), dk(k.size(), 99.0), dv(v.size(), 99.0);
  attention_backward(dq.data(), dk.data(), dv.data(), r.data(), probs.data(), q.data(), k.data(), v.data(),
                     dims, nullptr);
  auto objective = [&] {
    std::vector<double> o(q.size()), p(dims.probs_size());
    attention_forward(o.data(), p.data(), q.data(), k.data(), v.data(), dims, nullptr);
    return weighted_sum(o, r);
  };
  expect_gradient("dq", q, dq, objective);
  expect_gradient("dk", k, dk, objective);
  expect_gradient("dv", v, dv, objective);
}

TEST(TrainOpsGradient, AttentionProbsAreCausalRowsOfASoftmax) {
  std::mt19937 rng(6);
  const AttentionDims dims{
      .batch = kBatch, .seq = kSeq, .n_heads = kHeads, .n_kv_heads = kKvHeads, .head_dim = kHeadDim};
  const std::vector<double> q = random_vector(kRows * kHeads * kHeadDim, rng);
  const std::vector<double> k = random_vector(kRows * kKvHeads * kHeadDim, rng);
  const std::vector<double> v = random_vector(kRows * kKvHeads * kHeadDim, rng);
  std::vector<double> out(q.size()), probs(dims.probs_size(), 99.0);
  attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), dims, nullptr);
  for (int64_t row = 0; row < kBatch * kHeads * kSeq; ++row) {
    const int64_t t = row % kSeq;
    double sum = 0.0;
    for (int64_t s = 0; s < kSeq; ++s) {
      const double p = probs[row * kSeq + s];
      if (s > t) {
        EXPECT_EQ(p, 0.0) << "row " << row << " attends to the future position " << s;
      } else {
        EXPECT_GT(p, 0.0);
        sum += p;
      }
    }
    EXPECT_NEAR(sum, 1.0, 1e-15) << "row " << row;
  }
}

TEST(TrainOpsGradient, Swiglu) {
  std::mt19937 rng(7);
  const int64_t n = kRows * kOut;
  std::vector<double> gate = random_vector(n, rng, -4.0, 4.0), up = random_vector(n, rng);
  const std::vector<double> r = random_vector(n, rng);
  std::vector<double> dgate(n, 99.0), dup(n, 99.0);
  swiglu_backward(dgate.data(), dup.data(), r.data(), gate.data(), up.data(), n);
  auto objective = [&] {
    std::vector<double> out(n);
    swiglu_forward(out.data(), gate.data(), up.data(), n);
    return weighted_sum(out, r);
  };
  expect_gradient("dgate", gate, dgate, objective);
  expect_gradient("dup", up, dup, objective);
}

TEST(TrainOpsGradient, CrossEntropy) {
  std::mt19937 rng(8);
  std::vector<double> logits = random_vector(kRows * kVocab, rng, -3.0, 3.0);
  std::vector<int> targets(kRows);
  std::uniform_int_distribution<int> pick(0, kVocab - 1);
  for (int& t : targets) t = pick(rng);
  std::vector<double> dlogits(logits.size(), 99.0);
  cross_entropy(dlogits.data(), logits.data(), targets, kRows, kVocab, 1.0);
  expect_gradient("dlogits", logits, dlogits,
                  [&] { return cross_entropy<double>(nullptr, logits.data(), targets, kRows, kVocab, 1.0); });

  // grad_scale scales the gradient (the model passes 1 / tokens) and nothing else.
  std::vector<double> scaled(logits.size());
  const double loss = cross_entropy(scaled.data(), logits.data(), targets, kRows, kVocab, 0.25);
  EXPECT_DOUBLE_EQ(loss, cross_entropy<double>(nullptr, logits.data(), targets, kRows, kVocab, 1.0));
  for (size_t i = 0; i < scaled.size(); ++i) EXPECT_NEAR(scaled[i], 0.25 * dlogits[i], 1e-16) << i;
}

TEST(TrainOpsGradient, EmbeddingShard) {
  std::mt19937 rng(9);
  const int64_t dim = kIn, shard_rows = 4, first_row = 3;  // this shard holds tokens 3..6
  std::vector<double> table = random_vector(shard_rows * dim, rng);
  const std::vector<int> tokens = {0, 3, 6, 4, 3, 8};  // 0 and 8 live on other shards; 3 twice
  const std::vector<double> r = random_vector(static_cast<int64_t>(tokens.size()) * dim, rng);
  std::vector<double> dtable(table.size(), 0.0);
  embedding_backward(dtable.data(), r.data(), shard_rows, dim, tokens, first_row);
  expect_gradient("dtable", table, dtable, [&] {
    std::vector<double> out(r.size(), 99.0);
    embedding_forward(out.data(), table.data(), shard_rows, dim, tokens, first_row);
    return weighted_sum(out, r);
  });
}

}  // namespace
}  // namespace tandem::train
