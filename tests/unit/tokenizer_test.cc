#include "runtime/tokenizer.h"

#include "tests/unit/test_paths.h"

#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace tandem {
namespace {

std::string tok512_path() { return std::string(TANDEM_SOURCE_DIR) + "/models/stories260K/tok512.bin"; }

const Tokenizer& tok512() {
  static const Tokenizer* t = [] {
    Result<Tokenizer> r = Tokenizer::load_llama2c(tok512_path(), 512);
    if (!r.ok()) {
      ADD_FAILURE() << r.status().to_string();
      std::abort();
    }
    return new Tokenizer(std::move(r).value());
  }();
  return *t;
}

TEST(TokenizerTest, LoadsStories260KVocabulary) {
  const Tokenizer& t = tok512();
  EXPECT_EQ(t.vocab_size(), 512);
  EXPECT_EQ(t.piece(Tokenizer::kUnk), "<unk>");
  EXPECT_EQ(t.piece(Tokenizer::kBos), "\n<s>\n");
  EXPECT_EQ(t.piece(Tokenizer::kEos), "\n</s>\n");
  EXPECT_EQ(t.piece(3), "<0x00>");
  EXPECT_EQ(t.piece(258), "<0xFF>");
  EXPECT_EQ(t.piece(259), " t");
  EXPECT_EQ(t.score(260), -1.0f);
}

// A file read whole (no model header to size it) holds exactly its records;
// a partial record at its end is an error, not a shorter vocabulary.
TEST(TokenizerTest, WholeFileReadsEveryRecordAndRefusesAPartialOne) {
  Result<Tokenizer> whole = Tokenizer::load_llama2c_whole(tok512_path());
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  EXPECT_EQ(whole->vocab_size(), 512);
  EXPECT_EQ(whole->piece(259), " t");
  testing::TempDir dir;
  const std::string cut = dir.file("cut.bin");
  const std::string bytes = testing::read_file(tok512_path());
  testing::write_file(cut, bytes.substr(0, bytes.size() - 1));
  Result<Tokenizer> partial = Tokenizer::load_llama2c_whole(cut);
  EXPECT_EQ(partial.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(partial.status().message().find("token 511"), std::string::npos) << partial.status().to_string();
  testing::write_file(cut, bytes.substr(0, 4 + 8 + 5));  // the header and "<unk>" only
  EXPECT_NE(Tokenizer::load_llama2c_whole(cut).status().message().find("fewer than <unk>, BOS and EOS"),
            std::string::npos);
}

// Expected ids come from an independent naive transcription of llama2.c's
// encode() (O(n^2) best-pair loop) run over tok512.bin.
TEST(TokenizerTest, EncodesLikeLlama2c) {
  const Tokenizer& t = tok512();
  EXPECT_EQ(t.encode("Once upon a time", true, false), (std::vector<int>{1, 403, 407, 261, 378}));
  EXPECT_EQ(t.encode("Hello, world!", true, false), (std::vector<int>{1, 346, 306, 414, 432, 263, 304, 341, 443}));
  EXPECT_EQ(t.encode("Lily and Tom went to the park.", true, false),
            (std::vector<int>{1, 317, 269, 274, 287, 263, 377, 267, 265, 282, 295, 433, 426}));
  EXPECT_EQ(t.encode("  hi  ", true, false), (std::vector<int>{1, 410, 410, 270, 417, 410, 410}));
  // Code points in the vocabulary stay whole; others fall back to <0xNN>.
  EXPECT_EQ(t.encode("\xc3\xa9", true, false), (std::vector<int>{1, 410, 485}));  // é
  EXPECT_EQ(t.encode("\n", true, false), (std::vector<int>{1, 410, 13}));
  EXPECT_EQ(t.encode("\xe4\xb8\xad\xe6\x96\x87", true, false),  // 中文
            (std::vector<int>{1, 410, 231, 187, 176, 233, 153, 138}));
  EXPECT_EQ(t.encode("\xf0\x9f\x99\x82", true, false), (std::vector<int>{1, 410, 243, 162, 156, 133}));  // 🙂
}

TEST(TokenizerTest, PiecesOfAStoryOpeningLookSane) {
  const Tokenizer& t = tok512();
  std::vector<int> ids = t.encode("Once upon a time", true, true);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), Tokenizer::kBos);
  EXPECT_EQ(ids.back(), Tokenizer::kEos);
  EXPECT_EQ(t.piece(ids[1]), " Once");
  EXPECT_EQ(t.decode_piece(Tokenizer::kBos, ids[1]), "Once");  // BOS eats the dummy space
  EXPECT_EQ(t.decode_piece(ids[1], ids[2]), " upon");
  EXPECT_EQ(t.decode(ids), "Once upon a time");
}

TEST(TokenizerTest, MergesMakeEnglishShorterThanItsBytes) {
  const Tokenizer& t = tok512();
  const std::string text = "Once upon a time, there was a little girl named Lily. She loved to play outside.";
  std::vector<int> ids = t.encode(text, false, false);
  EXPECT_LT(ids.size(), text.size() / 2);
}

TEST(TokenizerTest, EmptyText) {
  const Tokenizer& t = tok512();
  EXPECT_EQ(t.encode("", true, false), std::vector<int>{Tokenizer::kBos});  // no dummy prefix
  EXPECT_EQ(t.encode("", true, true), (std::vector<int>{Tokenizer::kBos, Tokenizer::kEos}));
  EXPECT_TRUE(t.encode("", false, false).empty());
  EXPECT_EQ(t.decode(t.encode("", true, true)), "");
}

TEST(TokenizerTest, RoundTripsVariedText) {
  const Tokenizer& t = tok512();
  const std::vector<std::string> texts = {
      "Once upon a time, there was a little girl named Lily.",
      "Punctuation: !?.,;:'\"()[]{}<>/\\|@#$%^&*-_=+`~",
      "digits 0123456789 and 3.14159, 1e-9, -42",
      "line one\nline two\n\nline four\r\n\ttabbed",
      " leading space", "trailing space ", "   many   inner   spaces   ", " ", "  ", "\n",
      "caf\xc3\xa9 na\xc3\xafve", "\xe4\xb8\xad\xe6\x96\x87", "emoji \xf0\x9f\x99\x82!",
      "<0x41> <unk> <s> </s>",  // text that looks like special pieces stays literal
      // Invalid UTF-8: each byte that groups into no vocabulary piece becomes a
      // byte token, so arbitrary bytes round-trip.
      "\xff", "a\xff" "b", "\x80\x80\x80\x80\x80\x80", "\xe4\xb8", "\xc3", "\xf0\x9f\x99\x82\x82\x82",
      std::string("nul\0byte", 8), std::string(1, '\0'),
  };
  for (const std::string& text : texts) {
    SCOPED_TRACE(::testing::PrintToString(text));
    std::vector<int> with_bos = t.encode(text, true, true);
    EXPECT_EQ(t.decode(with_bos), text);
    // Without BOS nothing strips the dummy space.
    EXPECT_EQ(t.decode(t.encode(text, false, false)), " " + text);
    for (int id : with_bos) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, t.vocab_size());
    }
  }
}

TEST(TokenizerTest, RoundTripsRandomBytes) {
  const Tokenizer& t = tok512();
  std::mt19937 rng(1234);
  const std::string alphabet = "abcdefghij ETAOIN.,!\n\xc3\xa9\xe2\x82\xac\xff\x80";
  for (int iter = 0; iter < 500; ++iter) {
    std::string text(rng() % 40, '\0');
    for (char& c : text) {
      c = (iter % 2) ? static_cast<char>(rng()) : alphabet[rng() % alphabet.size()];
    }
    ASSERT_EQ(t.decode(t.encode(text, true, false)), text) << ::testing::PrintToString(text);
  }
}

TEST(TokenizerTest, LongInputRoundTrips) {
  const Tokenizer& t = tok512();
  std::string text;
  while (text.size() < 200000) text += "The cat sat on the mat. It was a sunny day!\n";
  std::vector<int> ids = t.encode(text, true, false);
  EXPECT_LT(ids.size(), text.size() * 3 / 5);
  EXPECT_EQ(t.decode(ids), text);
}

TEST(TokenizerTest, DecodePiece) {
  const Tokenizer& t = tok512();
  EXPECT_EQ(t.decode_piece(Tokenizer::kBos, 13), "\n");          // <0x0A>
  EXPECT_EQ(t.decode_piece(5, 258), std::string(1, '\xff'));     // <0xFF>
  EXPECT_EQ(t.decode_piece(Tokenizer::kBos, 259), "t");          // " t" after BOS
  EXPECT_EQ(t.decode_piece(260, 259), " t");
  EXPECT_EQ(t.decode_piece(-1, 259), " t");
  EXPECT_EQ(t.decode_piece(Tokenizer::kBos, Tokenizer::kEos), "");
  EXPECT_EQ(t.decode_piece(7, Tokenizer::kBos), "");
  EXPECT_EQ(t.decode_piece(7, -1), "");
  EXPECT_EQ(t.decode_piece(7, 512), "");
}

// ---- hostile and hand-made files ----

struct Token {
  float score;
  std::string piece;
  int32_t len = -2;  // -2: use piece.size()
};

std::string serialize(int32_t max_len, const std::vector<Token>& tokens) {
  std::string out;
  auto put = [&out](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  put(&max_len, 4);
  for (const Token& tk : tokens) {
    int32_t len = tk.len == -2 ? static_cast<int32_t>(tk.piece.size()) : tk.len;
    put(&tk.score, 4);
    put(&len, 4);
    out += tk.piece;
  }
  return out;
}

class TokenizerFileTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = temp_.file(name);
    tandem::testing::write_file(path, bytes);
    return path;
  }
  static std::string tok512_bytes() { return tandem::testing::read_file(tok512_path()); }
  // Expects `code` and a message naming the path and containing `detail`.
  static void expect_error(const Result<Tokenizer>& r, StatusCode code, const std::string& path,
                           const std::string& detail = "") {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code) << r.status().to_string();
    EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().to_string();
    EXPECT_NE(r.status().message().find(detail), std::string::npos) << r.status().to_string();
  }

  tandem::testing::TempDir temp_;
  const std::string dir_ = temp_.path();
};

TEST_F(TokenizerFileTest, MissingFile) {
  const std::string path = dir_ + "/nope.bin";
  expect_error(Tokenizer::load_llama2c(path, 512), StatusCode::kNotFound, path);
}

TEST_F(TokenizerFileTest, DirectoryIsRejected) {
  EXPECT_FALSE(Tokenizer::load_llama2c(dir_, 512).ok());
}

TEST_F(TokenizerFileTest, EmptyFile) {
  const std::string path = write("empty.bin", "");
  expect_error(Tokenizer::load_llama2c(path, 512), StatusCode::kDataLoss, path, "truncated");
}

TEST_F(TokenizerFileTest, EveryTruncationIsDataLoss) {
  const std::string full = tok512_bytes();
  ASSERT_GT(full.size(), 4000u);
  // Every cut through the header and first tokens, then a stride (a file write
  // per cut is slow under sanitizers), then every cut in the last token.
  for (size_t cut = 0; cut < full.size(); cut += (cut < 512 || cut + 16 > full.size()) ? 1 : 37) {
    const std::string path = write("cut.bin", full.substr(0, cut));
    Result<Tokenizer> r = Tokenizer::load_llama2c(path, 512);
    ASSERT_FALSE(r.ok()) << "cut at " << cut;
    ASSERT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().to_string();
    ASSERT_NE(r.status().message().find(path), std::string::npos) << r.status().to_string();
  }
}

TEST_F(TokenizerFileTest, TruncatedMidTokenNamesTheToken) {
  std::vector<Token> toks = {{0, "a"}, {0, "bb"}, {0, "ccc"}};
  std::string bytes = serialize(3, toks);
  const std::string path = write("mid.bin", bytes.substr(0, bytes.size() - 1));  // inside token 2's bytes
  expect_error(Tokenizer::load_llama2c(path, 3), StatusCode::kDataLoss, path, "token 2 of 3");
  const std::string path2 = write("mid2.bin", bytes.substr(0, 4 + 9 + 6));  // inside token 1's length
  expect_error(Tokenizer::load_llama2c(path2, 3), StatusCode::kDataLoss, path2, "token 1 of 3");
}

TEST_F(TokenizerFileTest, FewerTokensThanVocabSize) {
  const std::string path = write("tok512.bin", tok512_bytes());
  expect_error(Tokenizer::load_llama2c(path, 513), StatusCode::kDataLoss, path, "token 512 of 513");
  // A lying vocab_size must not reserve memory the file cannot back.
  expect_error(Tokenizer::load_llama2c(path, INT_MAX), StatusCode::kDataLoss, path, "token 512");
}

TEST_F(TokenizerFileTest, MoreTokensThanVocabSizeIsFine) {
  Result<Tokenizer> r = Tokenizer::load_llama2c(tok512_path(), 420);  // keeps " " (410)
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->vocab_size(), 420);
  std::vector<int> ids = r->encode("Lily, xyz \xff", true, false);
  for (int id : ids) EXPECT_LT(id, 420);
  EXPECT_EQ(r->decode(ids), "Lily, xyz \xff");
}

TEST_F(TokenizerFileTest, BadLengths) {
  const std::string neg = write("neg.bin", serialize(3, {{0, "a"}, {0, "b", -1}}));
  expect_error(Tokenizer::load_llama2c(neg, 2), StatusCode::kDataLoss, neg, "token 1 of 2");
  const std::string beyond = write("beyond.bin", serialize(3, {{0, "a"}, {0, "b", 100}}));
  expect_error(Tokenizer::load_llama2c(beyond, 2), StatusCode::kDataLoss, beyond, "token 1 of 2");
  const std::string huge = write("huge.bin", serialize(3, {{0, "a", 0x7fffffff}}));
  expect_error(Tokenizer::load_llama2c(huge, 1), StatusCode::kDataLoss, huge, "absurd length");
  const std::string max_neg = write("maxneg.bin", serialize(-5, {{0, "a"}}));
  expect_error(Tokenizer::load_llama2c(max_neg, 1), StatusCode::kDataLoss, max_neg, "max_token_length");
  const std::string max_big = write("maxbig.bin", serialize(1 << 24, {{0, "a"}}));
  expect_error(Tokenizer::load_llama2c(max_big, 1), StatusCode::kDataLoss, max_big, "max_token_length");
}

TEST_F(TokenizerFileTest, NonFiniteScore) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    const std::string path = write("score.bin", serialize(3, {{0, "a"}, {bad, "b"}}));
    expect_error(Tokenizer::load_llama2c(path, 2), StatusCode::kDataLoss, path, "non-finite score");
  }
}

TEST_F(TokenizerFileTest, NonPositiveVocabSize) {
  expect_error(Tokenizer::load_llama2c(tok512_path(), 0), StatusCode::kInvalidArgument, tok512_path());
  expect_error(Tokenizer::load_llama2c(tok512_path(), -3), StatusCode::kInvalidArgument, tok512_path());
}

// ids 0..2 are specials; no byte tokens in this vocabulary.
std::vector<Token> tiny_vocab(float ab_score, float ba_score) {
  return {{0, "<unk>"}, {0, "\n<s>\n"}, {0, "\n</s>\n"}, {0, " "},         {0, "a"},
          {0, "b"},     {ab_score, "ab"}, {ba_score, "ba"}, {-1e11f, "aa"}};
}

TEST_F(TokenizerFileTest, MergeTieGoesToTheFirstPairAndScoreWins) {
  const std::string tie = write("tie.bin", serialize(2, tiny_vocab(-1, -1)));
  Result<Tokenizer> t = Tokenizer::load_llama2c(tie, 9);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->encode("aba", false, false), (std::vector<int>{3, 6, 4}));  // " ", "ab", "a"
  const std::string ba = write("ba.bin", serialize(2, tiny_vocab(-2, -1)));
  Result<Tokenizer> t2 = Tokenizer::load_llama2c(ba, 9);
  ASSERT_TRUE(t2.ok()) << t2.status().to_string();
  EXPECT_EQ(t2->encode("aba", false, false), (std::vector<int>{3, 4, 7}));  // " ", "a", "ba"
  // Like llama2.c, a pair scoring at or below -1e10 never merges.
  EXPECT_EQ(t2->encode("aa", false, false), (std::vector<int>{3, 4, 4}));
}

TEST_F(TokenizerFileTest, MissingByteTokensBecomeUnk) {
  const std::string path = write("tiny.bin", serialize(2, tiny_vocab(-1, -1)));
  Result<Tokenizer> t = Tokenizer::load_llama2c(path, 9);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->encode("az", true, false), (std::vector<int>{1, 3, 4, Tokenizer::kUnk}));
}

}  // namespace
}  // namespace tandem
