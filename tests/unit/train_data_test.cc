// Training data (runtime/train/dataset.h): the character corpus of the real
// tinyshakespeare against nanoGPT's published split, the character tokenizer
// file against the engine's tokenizer, a tokenized corpus against encoding
// the text directly, input validation, and the batch sampler's contract.
#include "runtime/train/dataset.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/tokenizer.h"
#include "tests/unit/test_paths.h"

namespace tandem::train {
namespace {

std::string shakespeare_path() { return testing::source_dir() + "/data/tinyshakespeare.txt"; }

TokenCorpus load_or_die(const Result<TokenCorpus>& r) {
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok()) std::abort();
  return r.value();
}

std::string decode_chars(const TokenCorpus& c, const std::vector<int>& ids) {
  std::string out;
  for (int id : ids) out += c.chars.at(static_cast<size_t>(id - kFirstCharId));
  return out;
}

TEST(CharCorpus, TinyShakespeareMatchesNanoGptSplit) {
  const std::string text = testing::read_file(shakespeare_path());
  ASSERT_EQ(text.size(), 1115394u);
  const TokenCorpus c = load_or_die(load_char_corpus(shakespeare_path()));
  // nanoGPT's data/shakespeare_char/prepare.py prints these.
  EXPECT_EQ(c.chars.size(), 65u);
  EXPECT_EQ(c.vocab_size, 68);
  EXPECT_EQ(c.train.size(), 1003854u);
  EXPECT_EQ(c.val.size(), 111540u);
  const std::set<char> distinct(text.begin(), text.end());
  EXPECT_EQ(c.chars, std::string(distinct.begin(), distinct.end()));  // byte order: '\n', ' ', '!', ...
  EXPECT_EQ(decode_chars(c, c.train) + decode_chars(c, c.val), text);
  EXPECT_EQ(c.describe(), "1,003,854 train / 111,540 val tokens, vocabulary 68 (characters)");
  EXPECT_TRUE(check_corpus(c, 256, 68).ok());
}

TEST(CharCorpus, RefusesMissingEmptyAndTooShortTexts) {
  testing::TempDir dir;
  const std::string missing = dir.file("missing.txt");
  Result<TokenCorpus> r = load_char_corpus(missing);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(missing), std::string::npos) << r.status().message();

  const std::string empty = dir.file("empty.txt");
  testing::write_file(empty, "");
  r = load_char_corpus(empty);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(empty + " is empty"), std::string::npos) << r.status().message();

  // Each part needs one window of one token (two tokens).
  const std::string tiny = dir.file("tiny.txt");
  testing::write_file(tiny, "abcdefghij");  // 9 train, 1 validation
  r = load_char_corpus(tiny);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("too short"), std::string::npos) << r.status().message();
  testing::write_file(tiny, "abcdefghijklmnopqrs");  // 17 train, 2 validation
  EXPECT_TRUE(load_char_corpus(tiny).ok());

  EXPECT_EQ(load_char_corpus(shakespeare_path(), 1.0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(load_char_corpus(shakespeare_path(), 0.0).status().code(), StatusCode::kInvalidArgument);
}

TEST(CheckCorpus, NamesThePartShorterThanABlockAndIdsOutsideTheModel) {
  TokenCorpus c;
  c.vocab_size = 5;
  c.train = {3, 4, 3, 4, 3, 4, 3, 4, 3, 4};
  c.val = {4, 3, 4, 3};
  EXPECT_TRUE(check_corpus(c, 3, 5).ok());  // 4 validation tokens hold one window of 3 + 1
  const Status short_val = check_corpus(c, 4, 5);
  EXPECT_EQ(short_val.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(short_val.message().find("validation part has 4 tokens"), std::string::npos) << short_val.message();
  const Status small_model = check_corpus(c, 3, 4);
  EXPECT_EQ(small_model.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(small_model.message().find("token id 4"), std::string::npos) << small_model.message();
  EXPECT_FALSE(check_corpus(c, 0, 5).ok());
}

// What `tandem generate` will do with a model trained on the character corpus.
TEST(CharTokenizer, EngineTokenizerEncodesShakespeareToTheCorpusIds) {
  testing::TempDir dir;
  const TokenCorpus c = load_or_die(load_char_corpus(shakespeare_path()));
  const std::string path = dir.file("tokenizer.bin");
  ASSERT_TRUE(write_char_tokenizer(c.chars, path).ok());
  Result<Tokenizer> loaded = Tokenizer::load_llama2c(path, c.vocab_size);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const Tokenizer& tok = *loaded;
  EXPECT_EQ(tok.piece(Tokenizer::kBos), "\n<s>\n");
  EXPECT_EQ(tok.piece(kFirstCharId), "\n");
  EXPECT_EQ(tok.piece(kFirstCharId + 1), " ");
  // Exactly the vocabulary: one token more is not in the file.
  EXPECT_EQ(Tokenizer::load_llama2c(path, c.vocab_size + 1).status().code(), StatusCode::kDataLoss);

  const std::string line = "First Citizen:\nBefore we proceed any further, hear me speak.\n";
  ASSERT_EQ(testing::read_file(shakespeare_path()).substr(0, line.size()), line);
  const std::vector<int> corpus_ids(c.train.begin(), c.train.begin() + static_cast<std::ptrdiff_t>(line.size()));
  // encode() prepends SentencePiece's dummy space, which is a character of
  // the vocabulary: the ids are the corpus's behind one ' ' id. After BOS,
  // decode drops it again, so a prompt reads back as typed.
  std::vector<int> want = {kFirstCharId + 1};
  want.insert(want.end(), corpus_ids.begin(), corpus_ids.end());
  EXPECT_EQ(tok.encode(line, false, false), want);
  EXPECT_EQ(tok.decode(want), " " + line);
  std::vector<int> with_bos = tok.encode(line, true, false);
  EXPECT_EQ(with_bos.front(), Tokenizer::kBos);
  EXPECT_EQ(tok.decode(with_bos), line);
}

TEST(CharTokenizer, NonAsciiCharactersEncodeThroughByteTokens) {
  testing::TempDir dir;
  const std::string text = "na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x94 d\xC3\xA9j\xC3\xA0 vu, na\xC3\xAFve\n";
  testing::write_file(dir.file("t.txt"), text);
  const TokenCorpus c = load_or_die(load_char_corpus(dir.file("t.txt"), 0.5));
  ASSERT_TRUE(write_char_tokenizer(c.chars, dir.file("tok.bin")).ok());
  Result<Tokenizer> tok = Tokenizer::load_llama2c(dir.file("tok.bin"), c.vocab_size);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  std::vector<int> want = {kFirstCharId + static_cast<int>(c.chars.find(' '))};
  want.insert(want.end(), c.train.begin(), c.train.end());
  want.insert(want.end(), c.val.begin(), c.val.end());
  EXPECT_EQ(tok->encode(text, false, false), want);
  EXPECT_EQ(tok->decode(want), " " + text);
}

TEST(CharTokenizer, RefusesCharactersOutOfOrder) {
  EXPECT_EQ(char_tokenizer_bytes("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(char_tokenizer_bytes("ba").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(char_tokenizer_bytes("aa").status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(char_tokenizer_bytes("ab").ok());
}

// Each line encoded on its own (with encode()'s dummy space), as dataset.h says.
std::vector<int> encode_by_lines(const Tokenizer& tok, const std::string& text) {
  std::vector<int> ids;
  for (size_t begin = 0; begin < text.size();) {
    const size_t nl = text.find('\n', begin);
    const size_t end = nl == std::string::npos ? text.size() : nl + 1;
    const std::vector<int> line = tok.encode(text.substr(begin, end - begin), false, false);
    ids.insert(ids.end(), line.begin(), line.end());
    begin = end;
  }
  return ids;
}

// The text with the dummy space each line's encoding starts with.
std::string with_line_spaces(const std::string& text) {
  std::string out;
  bool line_start = true;
  for (char ch : text) {
    if (line_start) out += ' ';
    out += ch;
    line_start = ch == '\n';
  }
  return out;
}

TEST(TokenizedCorpus, MatchesEncodingTheTextWithTheStoriesTokenizer) {
  const std::string tok_path = testing::bundled_tokenizer();
  if (!std::filesystem::exists(tok_path)) GTEST_SKIP() << "no stories260K tokenizer at " << tok_path;
  testing::TempDir dir;
  const std::string text = testing::read_file(shakespeare_path()).substr(0, 20000);
  testing::write_file(dir.file("t.txt"), text);
  const TokenCorpus c = load_or_die(load_tokenized_corpus(dir.file("t.txt"), tok_path));
  Result<Tokenizer> tok = Tokenizer::load_llama2c(tok_path, 512);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_TRUE(c.chars.empty());
  const size_t split = 18000;  // int(20000 * 0.9): the text splits, as prepare.py
  EXPECT_EQ(c.train, encode_by_lines(*tok, text.substr(0, split)));
  EXPECT_EQ(c.val, encode_by_lines(*tok, text.substr(split)));
  EXPECT_EQ(tok->decode(c.train), with_line_spaces(text.substr(0, split)));
  EXPECT_EQ(tok->decode(c.val), with_line_spaces(text.substr(split)));
  EXPECT_NE(c.describe().find("vocabulary 512 (tokenizer)"), std::string::npos) << c.describe();
}

TEST(TokenizedCorpus, ErrorsNameTheTokenizer) {
  testing::TempDir dir;
  testing::write_file(dir.file("t.txt"), "abc abc abc\nabc abc abc\nabc abc abc\nabc abc abc\n");
  const std::string missing = dir.file("no-tokenizer.bin");
  Result<TokenCorpus> r = load_tokenized_corpus(dir.file("t.txt"), missing);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(missing), std::string::npos) << r.status().message();

  // Not a tokenizer: a piece length runs past the end of the file.
  const std::string garbage = dir.file("garbage.bin");
  testing::write_file(garbage, std::string("\x10\0\0\0\0\0\0\0\xff\xff\0\0", 12));
  r = load_tokenized_corpus(dir.file("t.txt"), garbage);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("tokenizer " + garbage), std::string::npos) << r.status().message();

  // A tokenizer that cannot spell the text ('c'): refused, not turned into <unk>.
  const std::string narrow = dir.file("narrow.bin");
  ASSERT_TRUE(write_char_tokenizer("\n ab", narrow).ok());
  r = load_tokenized_corpus(dir.file("t.txt"), narrow);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("cannot spell line 1"), std::string::npos) << r.status().message();
}

// Tokens equal to their positions make every window's start readable.
std::vector<int> positions(int n) {
  std::vector<int> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = i;
  return t;
}

// The window starts of one whole step, in window order j.
std::vector<int> step_starts(const std::vector<int>& tokens, uint64_t seed, int64_t step, const BatchLayout& l) {
  std::vector<int> starts;
  const auto n = static_cast<size_t>(l.micro_batch * l.seq_len);
  std::vector<int> in(n), tg(n);
  for (int r = 0; r < l.dp; ++r) {
    for (int64_t m = 0; m < l.accum; ++m) {
      sample_batch(tokens, seed, step, l, r, m, in, tg);
      for (int64_t w = 0; w < l.micro_batch; ++w) starts.push_back(in[static_cast<size_t>(w * l.seq_len)]);
    }
  }
  return starts;
}

TEST(BatchSampler, WindowsAreInBoundsAndTargetsAreShiftedInputs) {
  const int seq = 8;
  const std::vector<int> tokens = positions(seq + 4);  // four possible starts: 0..3
  const BatchLayout l{seq, 16, 1, 1};
  std::vector<int> in(16 * seq), tg(16 * seq);
  std::map<int, int> seen;
  for (int64_t step = 0; step < 200; ++step) {
    sample_batch(tokens, 7, step, l, 0, 0, in, tg);
    for (int w = 0; w < 16; ++w) {
      const int start = in[static_cast<size_t>(w * seq)];
      ASSERT_GE(start, 0);
      ASSERT_LE(start, 3);
      for (int t = 0; t < seq; ++t) {
        ASSERT_EQ(in[static_cast<size_t>(w * seq + t)], start + t);
        ASSERT_EQ(tg[static_cast<size_t>(w * seq + t)], start + t + 1);
      }
      ++seen[start];
    }
  }
  // 3200 draws over 4 starts: each near 800, the last one (whose target is
  // the final token) included.
  ASSERT_EQ(seen.size(), 4u);
  for (const auto& [start, count] : seen) EXPECT_NEAR(count, 800, 160) << "start " << start;
}

TEST(BatchSampler, AnyDataParallelSplitTrainsTheSameWindows) {
  const std::vector<int> tokens = positions(100000);
  const BatchLayout one{32, 24, 1, 1};  // one rank, one micro-step of 24 windows
  for (int64_t step : {0, 1, 977}) {
    const std::vector<int> want = step_starts(tokens, 42, step, one);
    EXPECT_EQ(step_starts(tokens, 42, step, one), want) << "not deterministic";
    for (const BatchLayout& split : {BatchLayout{32, 12, 1, 2}, BatchLayout{32, 12, 2, 1}, BatchLayout{32, 6, 2, 2},
                                     BatchLayout{32, 3, 4, 2}, BatchLayout{32, 1, 3, 8}, BatchLayout{32, 1, 24, 1}}) {
      EXPECT_EQ(step_starts(tokens, 42, step, split), want)
          << "step " << step << " dp=" << split.dp << " accum=" << split.accum << " micro_batch=" << split.micro_batch;
    }
  }
  EXPECT_NE(step_starts(tokens, 42, 0, one), step_starts(tokens, 42, 1, one));
  EXPECT_NE(step_starts(tokens, 42, 0, one), step_starts(tokens, 43, 0, one));
}

TEST(BatchSampler, EvalBatchesAreFixedWhateverTheMicroBatch) {
  const std::vector<int> tokens = positions(1000000);
  auto eval_starts = [&](int64_t micro_batch, int64_t batches) {
    const BatchLayout l{16, micro_batch, 1, 1};
    std::vector<int> in(static_cast<size_t>(micro_batch * 16)), tg(in.size()), starts;
    for (int64_t b = 0; b < batches; ++b) {
      eval_batch(tokens, 5, b, l, in, tg);
      for (int64_t w = 0; w < micro_batch; ++w) starts.push_back(in[static_cast<size_t>(w * 16)]);
      for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(tg[i], in[i] + 1);
    }
    return starts;
  };
  const std::vector<int> want = eval_starts(4, 6);
  EXPECT_EQ(eval_starts(4, 6), want);
  EXPECT_EQ(eval_starts(8, 3), want);
  EXPECT_EQ(eval_starts(1, 24), want);
  EXPECT_EQ(std::set<int>(want.begin(), want.end()).size(), want.size()) << "24 draws from a million starts should not repeat";
}

}  // namespace
}  // namespace tandem::train
