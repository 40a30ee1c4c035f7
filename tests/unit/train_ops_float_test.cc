// The float training ops, which training runs: against their double
// instantiations (checked by finite differences in train_ops_test.cc),
// against the inference kernels a trained model will run on, and for
// results that do not depend on the thread count.
//
// Tolerances: a float op vs double within 1e-5 of the largest |reference|
// value (float sums of <= 40 terms of size ~1 err by ~1e-6 of that); float
// forwards vs the inference kernels within 1e-6 of it (the same arithmetic,
// at most a rounding apart). Thread counts: bitwise equal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/thread_pool.h"
#include "runtime/train/ops.h"
#include "tests/unit/train_test_util.h"

namespace tandem::train {
namespace {

using testing::expect_float_matches_double;
using testing::random_vector;
using testing::to_float;

constexpr double kFloatTol = 1e-5;
constexpr double kKernelTol = 1e-6;

// Odd sizes, so the SIMD kernels' tails run: rows 10 = batch 2 x seq 5.
constexpr int64_t kBatch = 2, kSeq = 5, kRows = kBatch * kSeq;
constexpr int64_t kIn = 37, kOut = 19;
constexpr int64_t kHeads = 4, kKvHeads = 2, kHeadDim = 10;
constexpr int64_t kVocab = 33;
constexpr AttentionDims kDims{
    .batch = kBatch, .seq = kSeq, .n_heads = kHeads, .n_kv_heads = kKvHeads, .head_dim = kHeadDim};

TEST(TrainOpsFloat, MatmulMatchesDoubleAndTheInferenceKernel) {
  std::mt19937 rng(11);
  const auto x = random_vector(kRows * kIn, rng), w = random_vector(kOut * kIn, rng);
  const auto dout = random_vector(kRows * kOut, rng), dx_before = random_vector(kRows * kIn, rng);
  const auto xf = to_float(x), wf = to_float(w), doutf = to_float(dout);
  std::vector<double> out(kRows * kOut);
  std::vector<float> outf(out.size());
  matmul_forward(out.data(), x.data(), w.data(), kRows, kIn, kOut, nullptr);
  matmul_forward(outf.data(), xf.data(), wf.data(), kRows, kIn, kOut, nullptr);
  expect_float_matches_double("out", outf, out, kFloatTol);
  for (const bool accumulate : {false, true}) {
    std::vector<double> dx = dx_before, dw(w.size(), 0.5);
    matmul_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), kRows, kIn, kOut, accumulate,
                    nullptr);
    std::vector<float> dxf = to_float(dx_before), dwf(dw.size(), 0.5f);
    matmul_backward(dxf.data(), dwf.data(), doutf.data(), xf.data(), wf.data(), kRows, kIn, kOut, accumulate,
                    nullptr);
    expect_float_matches_double(accumulate ? "dx accumulated" : "dx", dxf, dx, kFloatTol);
    expect_float_matches_double("dw", dwf, dw, kFloatTol);
  }

  std::vector<float> kernel_out(out.size());
  cpu::matmul_rows(kernel_out.data(), xf.data(), wf.data(), kRows, kIn, kOut, 0, kOut);
  expect_float_matches_double("out vs matmul_rows", outf, {kernel_out.begin(), kernel_out.end()}, kKernelTol);
}

TEST(TrainOpsFloat, RmsnormMatchesDoubleAndTheInferenceKernel) {
  std::mt19937 rng(12);
  const auto x = random_vector(kRows * kIn, rng), w = random_vector(kIn, rng, 0.5, 1.5);
  const auto dout = random_vector(kRows * kIn, rng);
  std::vector<double> out(x.size()), rstd(kRows), dx(x.size()), dw(w.size(), 0.0);
  rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), kRows, kIn, 1e-5);
  rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), kRows, kIn);

  const auto xf = to_float(x), wf = to_float(w), doutf = to_float(dout);
  std::vector<float> outf(out.size()), rstdf(kRows), dxf(dx.size()), dwf(dw.size(), 0.0f);
  rmsnorm_forward(outf.data(), rstdf.data(), xf.data(), wf.data(), kRows, kIn, 1e-5f);
  rmsnorm_backward(dxf.data(), dwf.data(), doutf.data(), xf.data(), wf.data(), rstdf.data(), kRows, kIn);
  expect_float_matches_double("out", outf, out, kFloatTol);
  expect_float_matches_double("rstd", rstdf, rstd, kFloatTol);
  expect_float_matches_double("dx", dxf, dx, kFloatTol);
  expect_float_matches_double("dw", dwf, dw, kFloatTol);

  std::vector<float> kernel_out(out.size());
  for (int64_t r = 0; r < kRows; ++r) cpu::rmsnorm(&kernel_out[r * kIn], &xf[r * kIn], wf.data(), kIn, 1e-5f);
  expect_float_matches_double("out vs cpu::rmsnorm", outf, {kernel_out.begin(), kernel_out.end()},
                              kKernelTol);
}

TEST(TrainOpsFloat, RopeMatchesDoubleAndTheInferenceKernel) {
  std::mt19937 rng(13);
  const int64_t width = kHeads * kHeadDim;
  // Positions reach 63, where the low-frequency pairs turn by tens of radians.
  const int64_t seq = 64, rows = 2 * seq;
  const auto v = random_vector(rows * width, rng);
  std::vector<double> rotated = v, back = v;
  rope_forward(rotated.data(), rows, seq, kHeads, kHeadDim, 10000.0);
  rope_backward(back.data(), rows, seq, kHeads, kHeadDim, 10000.0);

  std::vector<float> rotatedf = to_float(v), backf = to_float(v);
  rope_forward(rotatedf.data(), rows, seq, kHeads, kHeadDim, 10000.0f);
  rope_backward(backf.data(), rows, seq, kHeads, kHeadDim, 10000.0f);
  expect_float_matches_double("forward", rotatedf, rotated, kFloatTol);
  expect_float_matches_double("backward", backf, back, kFloatTol);

  std::vector<float> kernel = to_float(v);
  std::vector<double> inv_freq(kHeadDim / 2);
  for (int64_t j = 0; j < kHeadDim / 2; ++j) inv_freq[j] = std::pow(10000.0, -2.0 * j / kHeadDim);
  for (int64_t r = 0; r < rows; ++r)
    cpu::rope_interleaved(&kernel[r * width], kHeads, kHeadDim, r % seq, inv_freq.data());
  expect_float_matches_double("forward vs cpu::rope_interleaved", rotatedf, {kernel.begin(), kernel.end()},
                              kKernelTol);

  // The backward undoes the forward (a rotation's transpose is its inverse).
  std::vector<float> round_trip = rotatedf;
  rope_backward(round_trip.data(), rows, seq, kHeads, kHeadDim, 10000.0f);
  expect_float_matches_double("backward(forward(v))", round_trip, v, kFloatTol);
}

TEST(TrainOpsFloat, SwigluMatchesDoubleAndTheInferenceKernel) {
  std::mt19937 rng(14);
  const int64_t n = kRows * kOut;
  const auto gate = random_vector(n, rng, -6.0, 6.0), up = random_vector(n, rng),
             dout = random_vector(n, rng);
  std::vector<double> out(n), dgate(n), dup(n);
  swiglu_forward(out.data(), gate.data(), up.data(), n);
  swiglu_backward(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), n);

  const auto gatef = to_float(gate), upf = to_float(up), doutf = to_float(dout);
  std::vector<float> outf(n), dgatef(n), dupf(n);
  swiglu_forward(outf.data(), gatef.data(), upf.data(), n);
  swiglu_backward(dgatef.data(), dupf.data(), doutf.data(), gatef.data(), upf.data(), n);
  expect_float_matches_double("out", outf, out, kFloatTol);
  expect_float_matches_double("dgate", dgatef, dgate, kFloatTol);
  expect_float_matches_double("dup", dupf, dup, kFloatTol);

  std::vector<float> kernel(n);
  cpu::swiglu(kernel.data(), gatef.data(), upf.data(), n);
  expect_float_matches_double("out vs cpu::swiglu", outf, {kernel.begin(), kernel.end()}, kKernelTol);
}

TEST(TrainOpsFloat, AttentionMatchesDoubleAndTheInferenceKernel) {
  std::mt19937 rng(15);
  const int64_t q_width = kHeads * kHeadDim, kv_width = kKvHeads * kHeadDim;
  const auto q = random_vector(kRows * q_width, rng, -2.0, 2.0),
             k = random_vector(kRows * kv_width, rng, -2.0, 2.0);
  const auto v = random_vector(kRows * kv_width, rng), dout = random_vector(kRows * q_width, rng);
  std::vector<double> out(q.size()), probs(kDims.probs_size()), dq(q.size()), dk(k.size()), dv(v.size());
  attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), kDims, nullptr);
  attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), probs.data(), q.data(), k.data(), v.data(),
                     kDims, nullptr);

  const auto qf = to_float(q), kf = to_float(k), vf = to_float(v), doutf = to_float(dout);
  std::vector<float> outf(out.size()), probsf(probs.size()), dqf(dq.size()), dkf(dk.size()), dvf(dv.size());
  attention_forward(outf.data(), probsf.data(), qf.data(), kf.data(), vf.data(), kDims, nullptr);
  attention_backward(dqf.data(), dkf.data(), dvf.data(), doutf.data(), probsf.data(), qf.data(), kf.data(),
                     vf.data(), kDims, nullptr);
  expect_float_matches_double("out", outf, out, kFloatTol);
  expect_float_matches_double("probs", probsf, probs, kFloatTol);
  expect_float_matches_double("dq", dqf, dq, kFloatTol);
  expect_float_matches_double("dk", dkf, dk, kFloatTol);
  expect_float_matches_double("dv", dvf, dv, kFloatTol);

  // Token t of a sequence, query head h, is the inference engine's decode
  // step at position t over a KV cache holding the sequence's k and v.
  const cpu::AttentionHeads heads{kHeads, kHeads / kKvHeads, kHeadDim, kv_width};
  std::vector<float> kernel(out.size()), scratch(cpu::attention_scratch_floats(kSeq, heads));
  for (int64_t b = 0; b < kBatch; ++b) {
    const float* k_cache = &kf[b * kSeq * kv_width];
    const float* v_cache = &vf[b * kSeq * kv_width];
    for (int64_t t = 0; t < kSeq; ++t) {
      const int64_t at = (b * kSeq + t) * q_width;
      cpu::attention_heads(&kernel[at], &qf[at], k_cache, v_cache, t + 1, heads, scratch.data());
    }
  }
  expect_float_matches_double("out vs cpu::attention_heads", outf, {kernel.begin(), kernel.end()}, kKernelTol);
}

TEST(TrainOpsFloat, CrossEntropyMatchesADirectLogSumExp) {
  std::mt19937 rng(16);
  std::vector<int> targets(kRows);
  std::uniform_int_distribution<int> pick(0, kVocab - 1);
  for (int& t : targets) t = pick(rng);
  // Logits near 0, and near +-1000 where exp overflows float (and double):
  // the shift by the row max must keep the loss and gradient exact.
  for (const double offset : {0.0, 1000.0, -1000.0}) {
    const auto logits = random_vector(kRows * kVocab, rng, offset - 5.0, offset + 5.0);
    const auto logitsf = to_float(logits);
    long double reference = 0.0L;  // long double's exp reaches e^11356
    std::vector<double> reference_grad(logits.size());
    for (int64_t r = 0; r < kRows; ++r) {
      long double sum = 0.0L;
      for (int64_t j = 0; j < kVocab; ++j) sum += std::exp(static_cast<long double>(logitsf[r * kVocab + j]));
      reference += std::log(sum) - static_cast<long double>(logitsf[r * kVocab + targets[r]]);
      for (int64_t j = 0; j < kVocab; ++j) {
        const long double p = std::exp(static_cast<long double>(logitsf[r * kVocab + j])) / sum;
        reference_grad[r * kVocab + j] = static_cast<double>(p - (j == targets[r] ? 1.0L : 0.0L));
      }
    }
    std::vector<float> grad(logits.size());
    const double loss = cross_entropy(grad.data(), logitsf.data(), targets, kRows, kVocab, 1.0f);
    EXPECT_NEAR(loss, static_cast<double>(reference), 1e-5 * static_cast<double>(reference)) << offset;
    expect_float_matches_double("dlogits", grad, reference_grad, kFloatTol);
    EXPECT_EQ(loss, cross_entropy<float>(nullptr, logitsf.data(), targets, kRows, kVocab, 1.0f));
    // ... and the double instantiation on the same (float) logits.
    const std::vector<double> same_logits(logitsf.begin(), logitsf.end());
    std::vector<double> grad_double(logits.size());
    const double loss_double =
        cross_entropy(grad_double.data(), same_logits.data(), targets, kRows, kVocab, 1.0);
    EXPECT_NEAR(loss, loss_double, 1e-5 * loss_double) << offset;
    expect_float_matches_double("dlogits vs double", grad, grad_double, kFloatTol);
  }
}

TEST(TrainOpsFloat, EmbeddingShardsSumToTheFullTableAndBackwardStaysInShard) {
  std::mt19937 rng(17);
  const int64_t dim = 6;
  const auto table = to_float(random_vector(kVocab * dim, rng));
  std::vector<int> tokens(kRows);
  std::uniform_int_distribution<int> pick(0, kVocab - 1);
  for (int& t : tokens) t = pick(rng);
  tokens[0] = 0;
  tokens[1] = kVocab - 1;  // both ends of the vocabulary
  const auto dout = to_float(random_vector(kRows * dim, rng));

  std::vector<float> full(kRows * dim), full_grad(table.size(), 0.0f);
  embedding_forward(full.data(), table.data(), kVocab, dim, tokens, 0);
  embedding_backward(full_grad.data(), dout.data(), kVocab, dim, tokens, 0);

  const int64_t split = 14;  // shards [0, 14) and [14, 33)
  std::vector<float> sum(full.size(), 0.0f);
  for (const auto& shard : {std::pair<int64_t, int64_t>{0, split}, {split, kVocab - split}}) {
    const int64_t first = shard.first, rows = shard.second;
    std::vector<float> out(full.size(), 99.0f);
    embedding_forward(out.data(), &table[first * dim], rows, dim, tokens, first);
    for (size_t i = 0; i < out.size(); ++i) sum[i] += out[i];
    // The shard's gradient sits between guard rows no token may touch.
    std::vector<float> grad((rows + 2) * dim, -7.0f);
    std::fill(grad.begin() + dim, grad.end() - dim, 0.0f);
    embedding_backward(&grad[dim], dout.data(), rows, dim, tokens, first);
    for (int64_t i = 0; i < dim; ++i) {
      EXPECT_EQ(grad[i], -7.0f) << "wrote before shard " << first;
      EXPECT_EQ(grad[(rows + 1) * dim + i], -7.0f) << "wrote after shard " << first;
    }
    for (int64_t i = 0; i < rows * dim; ++i)
      EXPECT_EQ(grad[dim + i], full_grad[first * dim + i]) << first << " " << i;
  }
  EXPECT_EQ(sum, full);
}

// ---- the same bits with any pool: resume and data parallelism rely on it.
template <typename Fn>
void expect_same_bits_for_every_pool(const char* name, Fn run) {
  const std::vector<float> inline_result = run(nullptr);
  for (const int threads : {1, 3}) {
    ThreadPool pool(threads);
    const std::vector<float> pooled = run(&pool);
    ASSERT_EQ(pooled.size(), inline_result.size());
    EXPECT_EQ(0, std::memcmp(pooled.data(), inline_result.data(), pooled.size() * sizeof(float)))
        << name << " with " << threads << " threads differs from the single-threaded result";
  }
}

TEST(TrainOpsFloat, MatmulIsBitwiseTheSameForAnyThreadCount) {
  std::mt19937 rng(18);
  // rows 1 takes matmul_rows' single-token path, whose row groups must not
  // move with the split; the others are big enough to split across threads.
  for (const auto& shape : {std::tuple<int64_t, int64_t, int64_t>{64, 72, 100}, {1, 100, 1603}}) {
    const int64_t rows = std::get<0>(shape), n_in = std::get<1>(shape), n_out = std::get<2>(shape);
    const auto x = to_float(random_vector(rows * n_in, rng)), w = to_float(random_vector(n_out * n_in, rng));
    const auto dout = to_float(random_vector(rows * n_out, rng));
    expect_same_bits_for_every_pool("matmul_forward", [&](ThreadPool* pool) {
      std::vector<float> out(rows * n_out);
      matmul_forward(out.data(), x.data(), w.data(), rows, n_in, n_out, pool);
      return out;
    });
    for (const bool accumulate_dx : {false, true}) {
      expect_same_bits_for_every_pool("matmul_backward", [&](ThreadPool* pool) {
        std::vector<float> grads(rows * n_in + n_out * n_in, 0.25f);  // dx then dw
        matmul_backward(grads.data(), grads.data() + rows * n_in, dout.data(), x.data(), w.data(), rows, n_in,
                        n_out, accumulate_dx, pool);
        return grads;
      });
    }
  }
}

TEST(TrainOpsFloat, AttentionIsBitwiseTheSameForAnyThreadCount) {
  std::mt19937 rng(19);
  const AttentionDims dims{.batch = 3, .seq = 40, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16};
  const int64_t rows = dims.batch * dims.seq, q_width = 64, kv_width = 32;
  const auto q = to_float(random_vector(rows * q_width, rng)),
             k = to_float(random_vector(rows * kv_width, rng));
  const auto v = to_float(random_vector(rows * kv_width, rng)),
             dout = to_float(random_vector(rows * q_width, rng));
  expect_same_bits_for_every_pool("attention", [&](ThreadPool* pool) {
    // out, probs, dq, dk, dv end to end in one array
    std::vector<float> all(2 * rows * q_width + dims.probs_size() + 2 * rows * kv_width);
    float* out = all.data();
    float* probs = out + rows * q_width;
    float* dq = probs + dims.probs_size();
    float* dk = dq + rows * q_width;
    float* dv = dk + rows * kv_width;
    attention_forward(out, probs, q.data(), k.data(), v.data(), dims, pool);
    attention_backward(dq, dk, dv, dout.data(), probs, q.data(), k.data(), v.data(), dims, pool);
    return all;
  });
}

}  // namespace
}  // namespace tandem::train
