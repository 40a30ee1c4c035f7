// Writing llama2.c checkpoints: what the loader reads back is what was
// written, the bundled model survives a round trip (its RoPE tables against
// the published file's), and `tandem model synth` is seeded and loadable, and
// writes a tokenizer that lets `tandem generate` run what it wrote.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "runtime/llama2c_loader.h"
#include "runtime/llama2c_writer.h"
#include "runtime/model_files.h"
#include "runtime/synthetic.h"
#include "runtime/tokenizer_writer.h"
#include "tests/unit/process_util.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data, b.data, static_cast<size_t>(a.numel()) * 4) == 0;
}

void expect_same_weights(const LlamaWeights& a, const LlamaWeights& b) {
  EXPECT_EQ(a.config.dim, b.config.dim);
  EXPECT_EQ(a.config.n_kv_heads, b.config.n_kv_heads);
  EXPECT_EQ(a.config.shared_classifier, b.config.shared_classifier);
  EXPECT_TRUE(same_bytes(a.embedding, b.embedding));
  EXPECT_TRUE(same_bytes(a.final_norm, b.final_norm));
  EXPECT_TRUE(same_bytes(a.classifier, b.classifier));
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    for (auto m : {&LlamaLayerWeights::attn_norm, &LlamaLayerWeights::wq, &LlamaLayerWeights::wk,
                   &LlamaLayerWeights::wv, &LlamaLayerWeights::wo, &LlamaLayerWeights::ffn_norm,
                   &LlamaLayerWeights::w_gate, &LlamaLayerWeights::w_down, &LlamaLayerWeights::w_up}) {
      EXPECT_TRUE(same_bytes(a.layers[l].*m, b.layers[l].*m)) << "layer " << l;
    }
  }
}

TEST(Llama2cWriter, SyntheticWeightsRoundTripTiedAndUntied) {
  for (const bool shared : {true, false}) {
    LlamaConfig c = *synthetic_shape("tiny-gqa");
    c.shared_classifier = shared;
    auto w = make_synthetic_weights(c, 11);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    testing::TempDir dir;
    ASSERT_TRUE(write_llama2c(*w, dir.file("m.bin")).ok());
    auto back = load_llama2c(dir.file("m.bin"));
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    expect_same_weights(*w, *back);
  }
}

TEST(Llama2cWriter, TheBundledModelRoundTripsWithItsRopeTables) {
  auto original = load_llama2c(testing::bundled_checkpoint());
  ASSERT_TRUE(original.ok());
  testing::TempDir dir;
  ASSERT_TRUE(write_llama2c(*original, dir.file("copy.bin")).ok());
  const std::string a = testing::read_file(testing::bundled_checkpoint());
  const std::string b = testing::read_file(dir.file("copy.bin"));
  ASSERT_EQ(a.size(), b.size());
  // Everything but the legacy RoPE tables is the same byte for byte; the
  // tables (recomputed here, in double) match the exporter's float32 values.
  const LlamaConfig& c = original->config;
  const size_t tables = static_cast<size_t>(c.max_seq_len * c.head_dim()) * 4;
  const size_t end = a.size() - (c.shared_classifier ? 0 : static_cast<size_t>(c.vocab_size * c.dim) * 4);
  const size_t begin = end - tables;
  EXPECT_EQ(a.substr(0, begin), b.substr(0, begin));
  EXPECT_EQ(a.substr(end), b.substr(end));
  for (size_t i = begin; i < end; i += 4) {
    float x, y;
    std::memcpy(&x, a.data() + i, 4);
    std::memcpy(&y, b.data() + i, 4);
    ASSERT_NEAR(x, y, 2e-4) << "table float " << (i - begin) / 4;
  }
}

TEST(Llama2cWriter, RefusesWhatTheFormatCannotHold) {
  auto w = make_synthetic_weights(*synthetic_shape("tiny-gqa"), 1);
  ASSERT_TRUE(w.ok());
  testing::TempDir dir;
  LlamaWeights wrong = *w;
  wrong.layers[1].wq.dtype = DType::kF16;
  Status s = write_llama2c(wrong, dir.file("m.bin"));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("wq is not f32"), std::string::npos) << s.to_string();
  EXPECT_FALSE(std::ifstream(dir.file("m.bin")).good());  // nothing half-written is left
  wrong = *w;
  wrong.layers.pop_back();
  EXPECT_EQ(write_llama2c(wrong, dir.file("m.bin")).code(), StatusCode::kInvalidArgument);
}

TEST(ModelSynth, SameSeedSameBytesAndTheLoaderAgrees) {
  testing::TempDir dir;
  auto synth = [&](const std::string& out, const std::string& seed) {
    return testing::run_command({testing::tandem_binary(), "model", "synth", "--shape", "tiny-gqa", "--layers", "3",
                                 "--seed", seed, dir.file(out)},
                                std::chrono::seconds(60));
  };
  ASSERT_EQ(synth("a.bin", "5").exit_code, 0);
  ASSERT_EQ(synth("b.bin", "5").exit_code, 0);
  ASSERT_EQ(synth("c.bin", "6").exit_code, 0);
  EXPECT_EQ(testing::read_file(dir.file("a.bin")), testing::read_file(dir.file("b.bin")));
  EXPECT_NE(testing::read_file(dir.file("a.bin")), testing::read_file(dir.file("c.bin")));
  LlamaConfig c = *synthetic_shape("tiny-gqa");
  c.n_layers = 3;
  auto expected = make_synthetic_weights(c, 5);
  auto loaded = load_llama2c(dir.file("a.bin"));
  ASSERT_TRUE(expected.ok() && loaded.ok());
  expect_same_weights(*expected, *loaded);
  const auto bad = testing::run_command(
      {testing::tandem_binary(), "model", "synth", "--shape", "tiny-gqa", "--heads", "3", dir.file("x.bin")},
      std::chrono::seconds(60));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("is not a multiple of n_heads=3"), std::string::npos) << bad.err;
}

testing::CommandResult tandem_run(std::vector<std::string> args) {
  args.insert(args.begin(), testing::tandem_binary());
  return testing::run_command(args, std::chrono::seconds(60));
}

TEST(ModelSynth, WritesATokenizerSoGenerateRunsTheModel) {
  testing::TempDir temp;
  const std::string dir = temp.file("model");  // made by synth
  // A vocabulary no bundled tokenizer has.
  const std::vector<std::string> synth = {"model", "synth", "--shape", "tiny-gqa", "--layers", "2",
                                          "--vocab", "300", dir + "/m.bin"};
  const auto made = tandem_run(synth);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_NE(made.err.find("tokenizer.bin: synthetic tokenizer, 300 tokens\n"), std::string::npos) << made.err;
  EXPECT_EQ(testing::read_file(dir + "/tokenizer.bin"), *synthetic_llama2c_tokenizer(300));

  const auto gen = tandem_run({"generate", "--model", dir, "--steps", "8", "--seed", "3"});
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_NE(gen.err.find("seed 3"), std::string::npos) << gen.err;
  // A prompt beyond the vocabulary's pieces comes back as typed (byte fallback).
  const auto prompted =
      tandem_run({"generate", "--model", dir + "/m.bin", "--prompt", "Hi, ünïcode", "--steps", "32"});
  EXPECT_EQ(prompted.exit_code, 0) << prompted.err;
  EXPECT_EQ(prompted.out.rfind("Hi, ünïcode", 0), 0u) << prompted.out;
  EXPECT_NE(prompted.err.find(" prompt tokens ("), std::string::npos) << prompted.err;  // the prefill rate

  // Overwriting is allowed, and the log says what it replaced.
  const auto again = tandem_run(synth);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("(the same as the one it replaced)"), std::string::npos) << again.err;
  const auto other = tandem_run({"model", "synth", "--shape", "tiny-gqa", "--vocab", "400", dir + "/m.bin"});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_NE(other.err.find("(replacing a different tokenizer.bin)"), std::string::npos) << other.err;
}

TEST(ModelSynth, NoTokenizerOnRequestAndNoneBelowTheByteVocabulary) {
  testing::TempDir dir;
  const auto plain = tandem_run({"model", "synth", "--shape", "tiny-gqa", "--no-tokenizer", dir.file("m.bin")});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("tokenizer.bin")));
  EXPECT_EQ(plain.err.find("tokenizer"), std::string::npos) << plain.err;

  // Too small for a tokenizer: refused before the checkpoint is written...
  const auto small = tandem_run({"model", "synth", "--shape", "tiny-gqa", "--vocab", "100", dir.file("s.bin")});
  EXPECT_EQ(small.exit_code, 1);
  EXPECT_NE(small.err.find("below 260"), std::string::npos) << small.err;
  EXPECT_NE(small.err.find("--no-tokenizer"), std::string::npos) << small.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("s.bin")));
  // ...unless asked for the checkpoint alone.
  EXPECT_EQ(tandem_run({"model", "synth", "--shape", "tiny-gqa", "--vocab", "100", "--no-tokenizer",
                        dir.file("s.bin")})
                .exit_code,
            0);
  // Dimensions given are positive: 0 or less is refused, not taken as "the shape's".
  for (const char* flag : {"--layers", "--dim", "--seq-len"}) {
    const auto zero = tandem_run({"model", "synth", "--shape", "tiny-gqa", flag, "0", dir.file("z.bin")});
    EXPECT_NE(zero.exit_code, 0) << flag;
    EXPECT_NE(zero.err.find(flag), std::string::npos) << zero.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("z.bin")));
  // A checkpoint named tokenizer.bin would be overwritten by its tokenizer.
  const auto clash = tandem_run({"model", "synth", "--shape", "tiny-gqa", dir.file("tokenizer.bin")});
  EXPECT_EQ(clash.exit_code, 1);
  EXPECT_NE(clash.err.find("would overwrite the checkpoint"), std::string::npos) << clash.err;
}

// tokenizer.bin is what a llama2.c checkpoint beside it resolves to first: a
// synthetic one written next to another model's checkpoint (here the bundled
// model with its tok512.bin) would give that model the wrong tokenizer.
TEST(ModelSynth, RefusesToGiveAnotherCheckpointItsTokenizer) {
  testing::TempDir dir;
  std::filesystem::copy_file(testing::bundled_checkpoint(), dir.file("stories260K.bin"));
  std::filesystem::copy_file(testing::bundled_tokenizer(), dir.file("tok512.bin"));
  const auto refused = tandem_run({"model", "synth", "--shape", "tiny-gqa", "--vocab", "512", dir.file("synth.bin")});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("holds another checkpoint, stories260K.bin"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("synth.bin")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("tokenizer.bin")));
  auto files = resolve_model_files(dir.file("stories260K.bin"));
  ASSERT_TRUE(files.ok()) << files.status().to_string();
  EXPECT_EQ(files->tokenizer, dir.file("tok512.bin"));
  // The checkpoint alone is fine.
  EXPECT_EQ(tandem_run({"model", "synth", "--shape", "tiny-gqa", "--no-tokenizer", dir.file("synth.bin")}).exit_code,
            0);
}

}  // namespace
}  // namespace tandem
