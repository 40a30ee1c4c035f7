// LlamaModel::forward_batch (continuous batching over a paged KV cache)
// against independent references: each sequence run alone through the
// contiguous forward(), and the float64 reference_llama one token at a time.
// Sequences of different lengths share steps (prefill chunks beside single
// decode tokens), their blocks shuffled through the pool, blocks freed by one
// sequence reused by another; bad steps are refused before anything runs.
#include <gtest/gtest.h>

#include <cstdint>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/llama_model.h"
#include "runtime/paged_kv.h"
#include "runtime/synthetic.h"
#include "tests/unit/paged_test_util.h"
#include "tests/unit/reference_llama.h"

namespace tandem {
namespace {

using paged_test::BatchScript;
using paged_test::max_relative_error;

LlamaConfig gqa_shape() {  // 8 query heads over 2 KV heads; odd vocab
  LlamaConfig c;
  c.dim = 64;
  c.hidden_dim = 96;
  c.n_layers = 3;
  c.n_heads = 8;
  c.n_kv_heads = 2;
  c.vocab_size = 301;
  c.max_seq_len = 64;
  return c;
}

std::unique_ptr<LlamaModel> make_model(Backend& backend, const LlamaWeights& w, LlamaModelOptions o) {
  auto model = LlamaModel::create(backend, w, o);
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  return model.ok() ? std::move(*model) : nullptr;
}

LlamaModelOptions paged_options(int64_t blocks = 40, int64_t block_size = 4) {
  LlamaModelOptions o;
  o.max_batch = 32;
  o.kv_blocks = blocks;
  o.kv_block_size = block_size;
  return o;
}

class PagedForward : public ::testing::Test {
 protected:
  void SetUp() override {
    auto w = make_synthetic_weights(gqa_shape(), 11);
    ASSERT_TRUE(w.ok());
    weights_ = std::move(*w);
    backend_ = std::move(*make_backend(BackendOptions{BackendKind::kCpu, 2, 0}));
  }
  LlamaWeights weights_;
  std::unique_ptr<Backend> backend_;
};

// Each sequence's wanted logits, run alone through the contiguous forward()
// with the same chunks.
std::map<std::pair<int, int>, std::vector<float>> alone(LlamaModel& model, const BatchScript& script) {
  std::map<std::pair<int, int>, std::vector<float>> out;  // (step, sequence) -> logits
  std::vector<float> logits(model.config().vocab_size);
  for (int id = 0; id < script.sequences(); ++id) {
    for (int step = 0; step < static_cast<int>(script.steps.size()); ++step) {
      for (const auto& part : script.steps[step]) {
        if (part.seq != id) continue;
        EXPECT_TRUE(model.forward(part.tokens, part.start_pos, logits).ok());
        if (part.want_logits) out[{step, id}] = logits;
      }
    }
  }
  return out;
}

// Each wanted part's logits from the float64 reference, one token at a time,
// in the order the script reports them.
std::vector<std::vector<float>> reference_logits(const LlamaWeights& weights, const BatchScript& script) {
  const testing::ReferenceWeights ref_weights = testing::reference_from(weights);
  std::map<int, std::unique_ptr<testing::ReferenceLlama>> refs;
  std::vector<std::vector<float>> out;
  for (const auto& step : script.steps) {
    for (const auto& part : step) {
      auto& ref = refs[part.seq];
      if (!ref) ref = std::make_unique<testing::ReferenceLlama>(ref_weights);
      std::vector<double> logits;
      for (size_t t = 0; t < part.tokens.size(); ++t)
        logits = ref->forward(part.tokens[t], static_cast<int>(part.start_pos + t));
      if (part.want_logits) out.emplace_back(logits.begin(), logits.end());
    }
  }
  return out;
}

TEST_F(PagedForward, MixedStepsMatchEachSequenceAlone) {
  for (int64_t block_size : {1, 4, 16}) {
    const int64_t blocks = 160 / block_size;
    auto batch = make_model(*backend_, weights_, paged_options(blocks, block_size));
    auto single = make_model(*backend_, weights_, LlamaModelOptions{});
    ASSERT_TRUE(batch && single);
    BatchScript script = paged_test::mixed_script(301, /*seed=*/3);
    BlockAllocator allocator(blocks);
    paged_test::shuffle_pool(allocator, 5);
    std::vector<std::vector<float>> got;
    ASSERT_TRUE(script.run(*batch, allocator, got).ok());
    const auto want = alone(*single, script);
    size_t i = 0;
    for (int step = 0; step < static_cast<int>(script.steps.size()); ++step) {
      for (const auto& part : script.steps[step]) {
        if (!part.want_logits) continue;
        ASSERT_LT(i, got.size());
        // Per-token kernels see the same numbers in a batch; only the matmul's
        // grouping of tokens (1 token: matvec; more: tiles) may round differently.
        EXPECT_LE(max_relative_error(want.at({step, part.seq}), got[i]), 2e-6)
            << "block size " << block_size << " step " << step << " sequence " << part.seq;
        ++i;
      }
    }
    EXPECT_EQ(i, got.size());
    EXPECT_EQ(allocator.used_blocks(), 0);  // the script freed what it took
  }
}

// A prefill-only step of one sequence runs the same kernels on the same
// tokens as forward(): bit for bit, on this ISA.
TEST_F(PagedForward, OneSequencePrefillIsBitwiseTheContiguousForward) {
  auto batch = make_model(*backend_, weights_, paged_options());
  auto single = make_model(*backend_, weights_, LlamaModelOptions{});
  const std::vector<int> prompt = {1, 5, 9, 200, 7, 3, 3, 8, 100, 42, 17};
  std::vector<int32_t> table = {7, 2, 30};  // positions 0..11 in blocks of 4, out of order
  std::vector<float> want(301), got(301);
  ASSERT_TRUE(single->forward(prompt, 0, want).ok());
  const SequenceStep step{prompt, 0, table, true};
  ASSERT_TRUE(batch->forward_batch(std::span(&step, 1), got).ok());
  EXPECT_EQ(want, got) << "max relative error " << max_relative_error(want, got);
}

TEST_F(PagedForward, GqaMatchesTheFloat64Reference) {
  auto batch = make_model(*backend_, weights_, paged_options());
  ASSERT_TRUE(batch);
  BatchScript script = paged_test::mixed_script(301, /*seed=*/9);
  BlockAllocator allocator(40);
  paged_test::shuffle_pool(allocator, 1);
  std::vector<std::vector<float>> got;
  ASSERT_TRUE(script.run(*batch, allocator, got).ok());
  const auto want = reference_logits(weights_, script);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_LE(max_relative_error(want[i], got[i]), 1e-4) << "wanted row " << i;
}

// An f16 pool: keys and values rounded to f16 (relative error <= 2^-11), so
// the logits follow the float64 reference to ~1e-3 of their scale, not
// ~1e-6; a wrong position, head or block would be off by far more. The
// pool takes half the bytes of an f32 one, and what it stores is f16 (the
// logits differ from the f32 pool's).
TEST_F(PagedForward, AnF16PoolTracksTheFloat64ReferenceInHalfTheBytes) {
  LlamaModelOptions o16 = paged_options();
  o16.kv_dtype = DType::kF16;
  auto f16 = make_model(*backend_, weights_, o16);
  auto f32 = make_model(*backend_, weights_, paged_options());
  ASSERT_TRUE(f16 && f32);
  const uint64_t pool32 = 2 * 3 * 40 * 4 * (2 * 8) * sizeof(float);  // K and V x layers x rows x kv_dim
  EXPECT_EQ(f32->allocated_bytes() - f16->allocated_bytes(), pool32 / 2);

  BatchScript script = paged_test::mixed_script(301, /*seed=*/9);
  std::vector<std::vector<float>> got16, got32;
  BlockAllocator allocator16(40), allocator32(40);
  paged_test::shuffle_pool(allocator16, 1);
  paged_test::shuffle_pool(allocator32, 1);
  ASSERT_TRUE(script.run(*f16, allocator16, got16).ok());
  ASSERT_TRUE(script.run(*f32, allocator32, got32).ok());
  ASSERT_EQ(got16.size(), got32.size());

  const auto want = reference_logits(weights_, script);
  ASSERT_EQ(want.size(), got16.size());
  bool any_differs = false;
  for (size_t i = 0; i < got16.size(); ++i) {
    EXPECT_LE(max_relative_error(want[i], got16[i]), 2e-3) << "wanted row " << i;
    any_differs = any_differs || got16[i] != got32[i];
  }
  EXPECT_TRUE(any_differs) << "the f16 pool gave the f32 pool's logits bit for bit";
}

// Attention splits a token's heads across threads: whole GQA groups, or
// runs of one group's query heads when the pool has more threads than the
// step has tokens x KV heads (8 threads, 2 KV heads, a one-token step: 8
// pieces of one head). Each head's arithmetic is the same either way, and so
// is every matmul row's, so the logits are bit for bit one thread's, paged
// (with f32 and f16 pools) and contiguous.
TEST_F(PagedForward, SplittingHeadsAcrossThreadsChangesNoBit) {
  auto one = std::move(*make_backend(BackendOptions{BackendKind::kCpu, 1, 0}));
  auto eight = std::move(*make_backend(BackendOptions{BackendKind::kCpu, 8, 0}));
  for (DType kv : {DType::kF32, DType::kF16}) {
    LlamaModelOptions o = paged_options();
    o.kv_dtype = kv;
    auto a = make_model(*one, weights_, o);
    auto b = make_model(*eight, weights_, o);
    ASSERT_TRUE(a && b);
    BatchScript script = paged_test::mixed_script(301, /*seed=*/5);
    std::vector<std::vector<float>> got_a, got_b;
    BlockAllocator alloc_a(40), alloc_b(40);
    ASSERT_TRUE(script.run(*a, alloc_a, got_a).ok());
    ASSERT_TRUE(script.run(*b, alloc_b, got_b).ok());
    EXPECT_EQ(got_a, got_b) << dtype_name(kv) << " pool";
  }
  auto a = make_model(*one, weights_, LlamaModelOptions{});
  auto b = make_model(*eight, weights_, LlamaModelOptions{});
  ASSERT_TRUE(a && b);
  const std::vector<int> prompt = {1, 5, 9, 200, 7, 3, 3, 8};
  std::vector<float> want(301), got(301);
  ASSERT_TRUE(a->forward(prompt, 0, want).ok());
  ASSERT_TRUE(b->forward(prompt, 0, got).ok());
  EXPECT_EQ(want, got) << "prefill";
  for (int pos = 8; pos < 20; ++pos) {  // one token a step: the most pieces
    const int token = 11 + pos;
    ASSERT_TRUE(a->forward(std::span(&token, 1), pos, want).ok());
    ASSERT_TRUE(b->forward(std::span(&token, 1), pos, got).ok());
    ASSERT_EQ(want, got) << "decode at " << pos;
  }
}

TEST_F(PagedForward, ArgmaxIsTheLogitsBest) {
  auto batch = make_model(*backend_, weights_, paged_options());
  BatchScript script = paged_test::mixed_script(301, 4);
  BlockAllocator allocator(40);
  std::vector<std::vector<float>> got;
  std::vector<int32_t> ids;
  ASSERT_TRUE(script.run(*batch, allocator, got, &ids).ok());
  ASSERT_EQ(ids.size(), got.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(ids[i], std::max_element(got[i].begin(), got[i].end()) - got[i].begin()) << i;
}

// A block freed by a finished sequence and taken by a new one: the new
// sequence sees only its own keys (its logits equal a fresh model's).
TEST_F(PagedForward, ReusedBlocksLeakNoState) {
  auto batch = make_model(*backend_, weights_, paged_options(6, 4));
  auto fresh = make_model(*backend_, weights_, LlamaModelOptions{});
  BlockAllocator allocator(6);
  std::vector<int32_t> a, b;
  const std::vector<int> first = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9};  // 15 positions: 4 blocks
  ASSERT_TRUE(allocator.allocate(4, a).ok());
  std::vector<float> logits(301), want(301);
  const SequenceStep s1{first, 0, a, true};
  ASSERT_TRUE(batch->forward_batch(std::span(&s1, 1), logits).ok());
  allocator.release(a);
  // The new sequence gets the same blocks (most recently freed first), and
  // its prompt is shorter: stale keys sit past its positions in its last block.
  const std::vector<int> second = {2, 7, 1, 8, 2, 8};
  ASSERT_TRUE(allocator.allocate(3, b).ok());  // 9 positions: the prompt and three decode tokens
  EXPECT_TRUE(std::find(b.begin(), b.end(), 3) != b.end() || std::find(b.begin(), b.end(), 2) != b.end());
  const SequenceStep s2{second, 0, b, true};
  ASSERT_TRUE(batch->forward_batch(std::span(&s2, 1), logits).ok());
  ASSERT_TRUE(fresh->forward(second, 0, want).ok());
  EXPECT_EQ(want, logits);
  // Then decode, token by token, still only its own positions.
  for (int t : {11, 12, 13}) {
    const int64_t pos = static_cast<int64_t>(second.size()) + (t - 11);
    const std::vector<int> one = {t};
    const SequenceStep d{one, pos, b, true};
    ASSERT_TRUE(batch->forward_batch(std::span(&d, 1), logits).ok());
    ASSERT_TRUE(fresh->forward(one, pos, want).ok());
    EXPECT_LE(max_relative_error(want, logits), 2e-6) << pos;
  }
}

Status code_of(LlamaModel& m, std::span<const SequenceStep> steps, std::span<float> logits) {
  return m.forward_batch(steps, logits);
}

// Bad steps are refused with the rule they break, before anything runs: the
// good sequence beside the bad one leaves no keys behind (its logits, run
// afterwards on blocks it never wrote, equal a fresh model's).
TEST_F(PagedForward, RefusesBadStepsWithoutTouchingTheCache) {
  auto batch = make_model(*backend_, weights_, paged_options(8, 4));
  auto fresh = make_model(*backend_, weights_, LlamaModelOptions{});
  const std::vector<int> good = {1, 2, 3, 4, 5};
  const std::vector<int32_t> table = {6, 1};
  std::vector<float> one(301), two(2 * 301);
  auto expect = [&](std::vector<SequenceStep> steps, StatusCode code, const std::string& words,
                    std::span<float> logits) {
    const Status s = code_of(*batch, steps, logits);
    EXPECT_EQ(s.code(), code) << s.to_string();
    EXPECT_NE(s.message().find(words), std::string::npos) << s.message();
  };
  const SequenceStep ok{good, 0, table, true};
  const std::vector<int> outside = {1, 301}, negative = {-1};
  const std::vector<int32_t> bad_block = {6, 8}, negative_block = {-1, 1}, short_table = {6}, shared = {1, 3};
  const std::vector<int> many(33, 1);
  const std::vector<int32_t> big_table = {0, 2, 3, 4, 5, 7, 6, 1, 0};
  expect({}, StatusCode::kInvalidArgument, "no sequences", {});
  expect({ok, SequenceStep{{}, 0, short_table, true}}, StatusCode::kInvalidArgument, "has no tokens", two);
  expect({ok, SequenceStep{outside, 0, {big_table.data(), 1}, true}}, StatusCode::kInvalidArgument,
         "token id 301", two);
  expect({ok, SequenceStep{negative, 0, {big_table.data(), 1}, true}}, StatusCode::kInvalidArgument,
         "token id -1", two);
  expect({SequenceStep{good, 0, bad_block, true}}, StatusCode::kInvalidArgument, "block id 8", one);
  expect({SequenceStep{good, 0, negative_block, true}}, StatusCode::kInvalidArgument, "block id -1", one);
  expect({SequenceStep{good, 0, short_table, true}}, StatusCode::kInvalidArgument, "cannot hold positions up to 4",
         one);
  expect({SequenceStep{good, 60, big_table, true}}, StatusCode::kOutOfRange, "context of 64", one);
  expect({SequenceStep{good, -1, big_table, true}}, StatusCode::kOutOfRange, "positions from -1", one);
  // A start so large that start + n wraps past INT64_MAX: refused, not let
  // through to a negative block count (UBSan would flag the wrap).
  expect({SequenceStep{good, INT64_MAX - 1, big_table, true}}, StatusCode::kOutOfRange, "context of 64", one);
  expect({SequenceStep{many, 0, big_table, true}}, StatusCode::kInvalidArgument, "max_batch=32", one);
  expect({ok}, StatusCode::kInvalidArgument, "logits hold 602 floats", two);
  expect({ok, SequenceStep{good, 0, shared, true}}, StatusCode::kInvalidArgument, "block 1 is written", two);
  // Sequence 1 reads block 6 (positions 0..3) while sequence 0 writes it.
  const std::vector<int> next = {9};
  const std::vector<int32_t> reads = {6, 2};
  expect({ok, SequenceStep{next, 5, reads, true}},
         StatusCode::kInvalidArgument, "reads block 6", two);
  std::vector<int32_t> ids(2);
  EXPECT_EQ(batch->forward_batch_argmax(std::vector<SequenceStep>{ok}, ids).code(), StatusCode::kInvalidArgument);

  // The good sequence, run now on its blocks, equals a fresh forward; then a
  // decode token at position 5 sees positions 0..4 only.
  std::vector<float> want(301);
  ASSERT_TRUE(fresh->forward(good, 0, want).ok());
  const SequenceStep again{good, 0, table, true};
  ASSERT_TRUE(batch->forward_batch(std::span(&again, 1), one).ok());
  EXPECT_EQ(want, one);

  auto contiguous_only = make_model(*backend_, weights_, LlamaModelOptions{});
  EXPECT_EQ(contiguous_only->forward_batch(std::span(&again, 1), one).code(), StatusCode::kFailedPrecondition);
  LlamaModelOptions no_cache = paged_options();
  no_cache.contiguous_kv = false;
  auto paged_only = make_model(*backend_, weights_, no_cache);
  EXPECT_EQ(paged_only->forward(good, 0, want).code(), StatusCode::kFailedPrecondition);
  EXPECT_LT(paged_only->allocated_bytes(), make_model(*backend_, weights_, paged_options())->allocated_bytes());
  no_cache.kv_blocks = 0;
  EXPECT_EQ(LlamaModel::create(*backend_, weights_, no_cache).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
