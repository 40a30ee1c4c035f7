// The pieces of the 405B-shaped scale run (scripts/scale_run.sh) on small
// shapes: GgufWriter's streamed tensors, write_synthetic_gguf (what `tandem
// model synth --format gguf` writes), and the prompt's logits that
// `--dump-logits` / generate.dump_logits save.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/formats/gguf_llama_writer.h"
#include "runtime/formats/gguf_model.h"
#include "runtime/generator.h"
#include "runtime/loaded_model.h"
#include "runtime/quantize.h"
#include "runtime/synthetic.h"
#include "runtime/synthetic_gguf.h"
#include "tests/unit/process_util.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

using gguf::GgmlType;

std::span<const uint8_t> as_bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

TEST(GgufWriterStream, ProducedTensorsEqualGivenOnes) {
  const std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {7, 8, 9};
  GgufWriter given;
  given.add_u32("k", 1);
  given.add_tensor("a", GgmlType::kF32, {3, 2}, as_bytes(a));
  given.add_tensor("b", GgmlType::kF32, {3}, as_bytes(b));
  GgufWriter streamed;
  streamed.add_u32("k", 1);
  streamed.add_tensor("a", GgmlType::kF32, {3, 2}, [&](const GgufWriter::TensorSink& sink) -> Status {
    for (size_t row = 0; row < 2; ++row)  // one row at a time
      TANDEM_RETURN_IF_ERROR(sink(as_bytes(a).subspan(row * 12, 12)));
    return Status::Ok();
  });
  streamed.add_tensor("b", GgmlType::kF32, {3}, [&](const GgufWriter::TensorSink& sink) { return sink(as_bytes(b)); });
  auto want = given.to_bytes();
  auto got = streamed.to_bytes();
  ASSERT_TRUE(want.ok() && got.ok()) << got.status().to_string();
  EXPECT_EQ(*got, *want);
  testing::TempDir dir;
  ASSERT_TRUE(streamed.write(dir.file("s.gguf")).ok());
  EXPECT_EQ(testing::read_file(dir.file("s.gguf")), *want);
}

TEST(GgufWriterStream, AProducerEmittingTheWrongByteCountFailsTheWrite) {
  const std::vector<float> a = {1, 2, 3, 4};
  for (size_t n : {size_t{8}, size_t{20}}) {
    GgufWriter w;
    w.add_tensor("a", GgmlType::kF32, {4}, [&](const GgufWriter::TensorSink& sink) -> Status {
      std::vector<uint8_t> bytes(n);
      return sink(bytes);
    });
    testing::TempDir dir;
    Status s = w.write(dir.file("bad.gguf"));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << n;
    EXPECT_NE(s.message().find("tensor a"), std::string::npos) << s.to_string();
    EXPECT_FALSE(std::filesystem::exists(dir.file("bad.gguf")));  // nothing half-written
  }
}

LlamaConfig small_shape() {
  LlamaConfig c = *synthetic_shape("tiny-gqa");  // dim 64, hidden 96, 8/2 heads, vocab 512
  c.shared_classifier = false;
  return c;
}

TEST(SyntheticGguf, LoadsBackWithItsShapeTokenizerAndDistribution) {
  const LlamaConfig c = small_shape();
  auto tok = Tokenizer::load_llama2c(testing::bundled_tokenizer(), 512);
  ASSERT_TRUE(tok.ok());
  auto spec = tokenizer_spec_from_llama2c(*tok);
  ASSERT_TRUE(spec.ok());
  testing::TempDir dir;
  SyntheticGgufOptions options;
  options.dtype = DType::kQ4_0;
  options.tokenizer = &*spec;
  ASSERT_TRUE(write_synthetic_gguf(c, options, dir.file("m.gguf")).ok());
  auto source = load_gguf_source(dir.file("m.gguf"));
  ASSERT_TRUE(source.ok()) << source.status().to_string();
  EXPECT_EQ(source->config.dim, c.dim);
  EXPECT_EQ(source->config.hidden_dim, c.hidden_dim);
  EXPECT_EQ(source->config.n_layers, c.n_layers);
  EXPECT_EQ(source->config.n_heads, c.n_heads);
  EXPECT_EQ(source->config.n_kv_heads, c.n_kv_heads);
  EXPECT_EQ(source->config.vocab_size, c.vocab_size);
  EXPECT_FALSE(source->config.shared_classifier);
  EXPECT_EQ(source->tokenizer.tokens, spec->tokens);
  // w_down [dim, hidden]: values in [-1/sqrt(hidden), 1/sqrt(hidden)] up to
  // Q4_0's rounding, spread over it (not all zero, not constant).
  auto down = find_tensor(*source, "layers.1.w_down");
  ASSERT_TRUE(down.ok());
  EXPECT_EQ((*down)->dtype, SourceDType::kQ4_0);
  std::vector<float> row(static_cast<size_t>(c.hidden_dim));
  const float a = 1.0f / std::sqrt(static_cast<float>(c.hidden_dim));
  float lo = 0, hi = 0;
  for (int64_t r = 0; r < c.dim; ++r) {
    dequantize_row(DType::kQ4_0, (*down)->data + r * (c.hidden_dim / 32 * 18), c.hidden_dim, row.data());
    for (float v : row) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  EXPECT_LE(hi, a * 1.01f);
  EXPECT_GE(lo, -a * 1.15f);  // Q4_0's -8 step reaches past the block's max by 1/7
  EXPECT_GT(hi, a * 0.9f);
  EXPECT_LT(lo, -a * 0.9f);
  auto norm = find_tensor(*source, "layers.0.ffn_norm");
  ASSERT_TRUE(norm.ok());
  const auto* n = reinterpret_cast<const float*>((*norm)->data);
  for (int64_t i = 0; i < c.dim; ++i) EXPECT_NEAR(n[i], 1.0f, 0.1f);
}

TEST(SyntheticGguf, BytesDependOnTheSeedNotTheThreads) {
  const LlamaConfig c = small_shape();
  testing::TempDir dir;
  SyntheticGgufOptions options;
  options.dtype = DType::kQ8_0;
  options.threads = 1;
  ASSERT_TRUE(write_synthetic_gguf(c, options, dir.file("one.gguf")).ok());
  options.threads = 3;
  ASSERT_TRUE(write_synthetic_gguf(c, options, dir.file("three.gguf")).ok());
  options.seed = 2;
  ASSERT_TRUE(write_synthetic_gguf(c, options, dir.file("seed2.gguf")).ok());
  EXPECT_EQ(testing::read_file(dir.file("one.gguf")), testing::read_file(dir.file("three.gguf")));
  EXPECT_NE(testing::read_file(dir.file("one.gguf")), testing::read_file(dir.file("seed2.gguf")));
}

TEST(SyntheticGguf, RowsThatAreNoWholeBlocksAreRefused) {
  testing::TempDir dir;
  SyntheticGgufOptions options;
  options.dtype = DType::kQ4_0;
  Status s = write_synthetic_gguf(*synthetic_shape("stories260K"), options, dir.file("m.gguf"));  // hidden 172
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("172"), std::string::npos) << s.to_string();
}

// The logits --dump-logits saves are the prompt's last position's, as the
// model's own forward of the same tokens gives them; generation goes on
// choosing the same greedy tokens.
TEST(DumpLogits, GenerateSavesThePromptsLastLogits) {
  testing::TempDir dir;
  const std::string file = dir.file("logits.f32");
  auto r = testing::run_command({testing::tandem_binary(), "generate", "--model", testing::bundled_model_dir(),
                                 "--prompt", "Once upon a time", "--steps", "24", "--temperature", "0",
                                 "--dump-logits", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string bytes = testing::read_file(file);
  ASSERT_EQ(bytes.size(), 512 * sizeof(float));
  std::vector<float> saved(512);
  std::memcpy(saved.data(), bytes.data(), bytes.size());

  auto loaded = load_model(testing::bundled_model_dir(), LoadOptions{});
  ASSERT_TRUE(loaded.ok());
  const std::vector<int> prompt = loaded->tokenizer.encode("Once upon a time", true, false);
  std::vector<float> want(512);
  ASSERT_TRUE(loaded->model->forward(prompt, 0, want).ok());
  EXPECT_EQ(saved, want);

  auto plain = testing::run_command({testing::tandem_binary(), "generate", "--model", testing::bundled_model_dir(),
                                     "--prompt", "Once upon a time", "--steps", "24", "--temperature", "0"});
  EXPECT_EQ(r.out, plain.out);
}

}  // namespace
}  // namespace tandem
