// Bad model files: each gives a clear error naming the file and the problem,
// and nothing is allocated from what a header claims.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstring>
#include <filesystem>

#include "runtime/llama2c_loader.h"
#include "runtime/loaded_model.h"
#include "runtime/model_files.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

using testing::TempDir;

std::string with_header(std::string bytes, int index, int32_t value) {
  std::memcpy(bytes.data() + index * 4, &value, 4);
  return bytes;
}

class LoaderTest : public ::testing::Test {
 protected:
  std::string checkpoint_ = testing::read_file(testing::bundled_checkpoint());
  TempDir dir_;

  // Writes `bytes` as a checkpoint and loads it; the error must name the path.
  Status load_bytes(const std::string& bytes) {
    const std::string path = dir_.file("model.bin");
    testing::write_file(path, bytes);
    auto w = load_llama2c(path);
    if (w.ok()) return Status::Ok();
    EXPECT_NE(w.status().message().find(path), std::string::npos) << w.status().to_string();
    return w.status();
  }
};

TEST_F(LoaderTest, LoadsTheBundledModel) {
  auto w = load_llama2c(testing::bundled_checkpoint());
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  EXPECT_EQ(w->config.dim, 64);
  EXPECT_EQ(w->config.hidden_dim, 172);
  EXPECT_EQ(w->config.n_layers, 5);
  EXPECT_EQ(w->config.n_heads, 8);
  EXPECT_EQ(w->config.n_kv_heads, 4);
  EXPECT_EQ(w->config.vocab_size, 512);
  EXPECT_EQ(w->config.max_seq_len, 512);
  EXPECT_TRUE(w->config.shared_classifier);
  EXPECT_EQ(w->classifier.data, w->embedding.data);
  // The first embedding value is the first float after the header.
  float first;
  std::memcpy(&first, checkpoint_.data() + 28, 4);
  EXPECT_EQ(w->embedding.f32()[0], first);
}

TEST_F(LoaderTest, EmptyFile) {
  Status s = load_bytes("");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("shorter than the 28-byte"), std::string::npos);
}

TEST_F(LoaderTest, TruncatedWeights) {
  Status s = load_bytes(checkpoint_.substr(0, checkpoint_.size() - 1000));
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s.message();
}

TEST_F(LoaderTest, TrailingBytes) {
  Status s = load_bytes(checkpoint_ + "extra");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("trailing"), std::string::npos) << s.message();
}

TEST_F(LoaderTest, HeaderDisagreesWithFileSize) {
  Status s = load_bytes(with_header(checkpoint_, 1, 200));  // hidden_dim 172 -> 200
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("hidden_dim=200"), std::string::npos) << s.message();
}

TEST_F(LoaderTest, NegativeDims) {
  for (int field : {0, 1, 2, 3, 4, 6}) {
    Status s = load_bytes(with_header(checkpoint_, field, -8));
    EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << "field " << field << ": " << s.to_string();
    EXPECT_NE(s.message().find("=-8"), std::string::npos) << s.message();
  }
}

TEST_F(LoaderTest, AbsurdDimsAllocateNothing) {
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  for (int field : {0, 1, 2, 3, 5, 6}) {
    Status s = load_bytes(with_header(checkpoint_, field, INT32_MAX));
    EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << "field " << field << ": " << s.to_string();
  }
  Status s = load_bytes(with_header(checkpoint_, 5, INT32_MIN));  // vocab: |INT32_MIN| overflows
  EXPECT_FALSE(s.ok());
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 64 * 1024) << "KiB of peak memory grew";
}

TEST_F(LoaderTest, DimsThatDoNotDivide) {
  Status s = load_bytes(with_header(checkpoint_, 3, 7));  // 64 % 7 != 0
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not a multiple of n_heads=7"), std::string::npos) << s.message();
  s = load_bytes(with_header(checkpoint_, 4, 3));  // 8 % 3 != 0
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("n_kv_heads=3"), std::string::npos) << s.message();
}

TEST_F(LoaderTest, MissingFileAndDirectory) {
  auto w = load_llama2c(dir_.file("nope.bin"));
  EXPECT_EQ(w.status().code(), StatusCode::kNotFound);
  EXPECT_NE(w.status().message().find("nope.bin"), std::string::npos);
  w = load_llama2c(dir_.path());
  EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(w.status().message().find("not a regular file"), std::string::npos);
}

TEST(ModelFiles, ResolvesTheBundledDirectoryAndFile) {
  auto files = resolve_model_files(testing::bundled_model_dir());
  ASSERT_TRUE(files.ok()) << files.status().to_string();
  EXPECT_EQ(files->checkpoint, testing::bundled_model_dir() + "/stories260K.bin");
  EXPECT_EQ(files->tokenizer, testing::bundled_model_dir() + "/tok512.bin");
  files = resolve_model_files(testing::bundled_checkpoint());
  ASSERT_TRUE(files.ok()) << files.status().to_string();
  EXPECT_EQ(files->tokenizer, testing::bundled_model_dir() + "/tok512.bin");
}

TEST(ModelFiles, MissingTokenizerIsNamed) {
  TempDir dir;
  std::filesystem::copy_file(testing::bundled_checkpoint(), dir.file("model.bin"));
  auto files = resolve_model_files(dir.path());
  EXPECT_EQ(files.status().code(), StatusCode::kNotFound);
  EXPECT_NE(files.status().message().find("no tokenizer"), std::string::npos);
  EXPECT_NE(files.status().message().find(dir.path()), std::string::npos);

  files = resolve_model_files(dir.path(), dir.file("tok.bin"));
  EXPECT_EQ(files.status().code(), StatusCode::kNotFound);
  EXPECT_NE(files.status().message().find("tok.bin"), std::string::npos);
}

TEST(ModelFiles, AmbiguousDirectoryIsRefused) {
  TempDir dir;
  std::filesystem::copy_file(testing::bundled_checkpoint(), dir.file("a.bin"));
  std::filesystem::copy_file(testing::bundled_checkpoint(), dir.file("b.bin"));
  std::filesystem::copy_file(testing::bundled_tokenizer(), dir.file("tok512.bin"));
  auto files = resolve_model_files(dir.path());
  EXPECT_EQ(files.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(files.status().message().find("several checkpoints"), std::string::npos);
}

TEST(LoadModel, TokenizerSmallerThanTheVocabularyIsRefused) {
  TempDir dir;
  std::filesystem::copy_file(testing::bundled_checkpoint(), dir.file("model.bin"));
  const std::string tok = testing::read_file(testing::bundled_tokenizer());
  testing::write_file(dir.file("tokenizer.bin"), tok.substr(0, tok.size() / 2));
  auto loaded = load_model(dir.path(), {});
  EXPECT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("tokenizer.bin"), std::string::npos)
      << loaded.status().to_string();
}

}  // namespace
}  // namespace tandem
