// The synthetic llama2.c tokenizer (`tandem model synth` writes one beside its
// checkpoint): the loader reads exactly the asked vocabulary, any text (ASCII,
// other UTF-8, stray bytes) encodes with byte fallback and decodes back, and
// its pieces do merge.
#include "runtime/tokenizer_writer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "runtime/llama_weights.h"
#include "runtime/tokenizer.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

Tokenizer load_synthetic(int vocab_size, const testing::TempDir& dir) {
  const std::string path = dir.file("tokenizer-" + std::to_string(vocab_size) + ".bin");
  Status s = write_synthetic_llama2c_tokenizer(vocab_size, path);
  EXPECT_TRUE(s.ok()) << s.to_string();
  Result<Tokenizer> t = Tokenizer::load_llama2c(path, vocab_size);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  if (!t.ok()) std::abort();
  return std::move(t).value();
}

class SyntheticTokenizer : public ::testing::TestWithParam<int> {
 protected:
  testing::TempDir dir_;
};

TEST_P(SyntheticTokenizer, LoadsWithExactlyTheVocabulary) {
  const int v = GetParam();
  const Tokenizer t = load_synthetic(v, dir_);
  ASSERT_EQ(t.vocab_size(), v);
  EXPECT_EQ(t.piece(Tokenizer::kUnk), "<unk>");
  EXPECT_EQ(t.piece(Tokenizer::kBos), "\n<s>\n");
  EXPECT_EQ(t.piece(Tokenizer::kEos), "\n</s>\n");
  EXPECT_EQ(t.piece(3), "<0x00>");
  EXPECT_EQ(t.piece(3 + 0x41), "<0x41>");
  EXPECT_EQ(t.piece(258), "<0xFF>");
  std::set<std::string> pieces;
  for (int id = 0; id < v; ++id) pieces.insert(t.piece(id));
  EXPECT_EQ(pieces.size(), static_cast<size_t>(v)) << "pieces repeat";
  EXPECT_EQ(t.piece(kFirstSyntheticPiece), " ");  // the dummy prefix, so decode can drop it
  for (int id = kFirstSyntheticPiece + 1; id < v; ++id) ASSERT_LT(t.score(id), t.score(id - 1)) << "id " << id;
  // The file holds no more tokens than asked: a larger vocabulary is refused.
  const std::string path = dir_.file("tokenizer-" + std::to_string(v) + ".bin");
  EXPECT_EQ(Tokenizer::load_llama2c(path, v + 1).status().code(), StatusCode::kDataLoss);
}

TEST_P(SyntheticTokenizer, AnyTextRoundTrips) {
  using namespace std::string_literals;
  const Tokenizer t = load_synthetic(GetParam(), dir_);
  const std::vector<std::string> texts = {
      "",
      "a",
      "Hello, world!",
      "once upon a time there was a little girl named lily",
      "  two leading spaces, two trailing  ",
      "tabs\tnewlines\nand\r\nreturns ~`|{}",
      "Grüße aus Köln, naïve café",
      "日本語のテキスト and emoji 🙂👍🏽",
      "<0x41> <unk> \n<s>\n \n</s>\n",  // control and byte pieces spelt as text
      "stray bytes \xff\xfe\xc3 and a NUL \0 here"s,
  };
  for (const std::string& text : texts) {
    const std::vector<int> ids = t.encode(text, /*add_bos=*/true, /*add_eos=*/false);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], Tokenizer::kBos);
    for (size_t i = 1; i < ids.size(); ++i) {
      // Byte fallback covers everything: no <unk>, and text never forges BOS/EOS.
      EXPECT_GT(ids[i], Tokenizer::kEos) << "token " << i << " of \"" << text << "\"";
      EXPECT_LT(ids[i], t.vocab_size());
    }
    EXPECT_EQ(t.decode(ids), text);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, SyntheticTokenizer, ::testing::Values(260, 512, 32000),
                         [](const ::testing::TestParamInfo<int>& p) { return std::to_string(p.param); });

TEST(SyntheticTokenizerPieces, TheSmallestIsBytesOnlyAndLargerOnesMerge) {
  testing::TempDir dir;
  // 260: no piece but " ", so every character is a byte token.
  const Tokenizer bytes_only = load_synthetic(260, dir);
  EXPECT_EQ(bytes_only.encode("hi", false, false), (std::vector<int>{kFirstSyntheticPiece, 3 + 'h', 3 + 'i'}));
  // 32000 holds every " xyz": a three-letter word is one token.
  const Tokenizer large = load_synthetic(32000, dir);
  const std::vector<int> ids = large.encode("abc cab", false, false);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(large.piece(ids[0]), " abc");
  EXPECT_EQ(large.piece(ids[1]), " cab");
}

TEST(SyntheticTokenizerFile, IsDeterministicAndReplacesAFileWhole) {
  Result<std::string> a = synthetic_llama2c_tokenizer(512), b = synthetic_llama2c_tokenizer(512);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  testing::TempDir dir;
  const std::string path = dir.file("tokenizer.bin");
  testing::write_file(path, std::string(100000, 'x'));  // longer than the new file
  ASSERT_TRUE(write_synthetic_llama2c_tokenizer(512, path).ok());
  EXPECT_EQ(testing::read_file(path), *a);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(SyntheticTokenizerFile, RefusesSizesOutsideTheFormat) {
  testing::TempDir dir;
  // 259 holds every byte, but the dummy space would come back after BOS.
  for (int v : {259, 258, 1, 0, -5, static_cast<int>(kMaxVocab) + 1}) {
    const Status s = write_synthetic_llama2c_tokenizer(v, dir.file("t.bin"));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << v;
    EXPECT_NE(s.message().find("260"), std::string::npos) << s.to_string();  // names the minimum
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("t.bin")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("t.bin.tmp")));
}

}  // namespace
}  // namespace tandem
