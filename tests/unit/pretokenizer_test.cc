// The hand-written pre-tokenizer scanners against the regexes they stand
// for: cases worked out by hand, and random strings split by Python's
// `regex` module (the reference: it has \p classes and the same
// leftmost-first alternation as the tokenizers' Oniguruma / fancy-regex).
// The Unicode class table against Python's unicodedata for every code point.
#include "runtime/pretokenizer.h"
#include "runtime/unicode_class.h"

#include "tests/unit/process_util.h"

#include <gtest/gtest.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace tandem {
namespace {

using Words = std::vector<std::string>;

Words split(PreTokenizer kind, std::string_view text) {
  Words out;
  for (std::string_view w : pretokenize(kind, text)) out.emplace_back(w);
  return out;
}

TEST(PreTokenizer, HandWorkedCases) {
  const std::string text = "Hello world's 123 4567";
  EXPECT_EQ(split(PreTokenizer::kGpt2, text), (Words{"Hello", " world", "'s", " 123", " 4567"}));
  EXPECT_EQ(split(PreTokenizer::kLlama3, text), (Words{"Hello", " world", "'s", " ", "123", " ", "456", "7"}));
  EXPECT_EQ(split(PreTokenizer::kQwen2, text),
            (Words{"Hello", " world", "'s", " ", "1", "2", "3", " ", "4", "5", "6", "7"}));
  // Contractions are case-insensitive for Llama 3 only.
  EXPECT_EQ(split(PreTokenizer::kLlama3, "I'M"), (Words{"I", "'M"}));
  EXPECT_EQ(split(PreTokenizer::kGpt2, "I'M"), (Words{"I", "'", "M"}));
  // Whitespace before a word: all but the last space stand alone.
  EXPECT_EQ(split(PreTokenizer::kGpt2, "a\n\n  b"), (Words{"a", "\n\n ", " b"}));
  EXPECT_EQ(split(PreTokenizer::kLlama3, "a\n\n  b"), (Words{"a", "\n\n", " ", " b"}));
  EXPECT_EQ(split(PreTokenizer::kLlama3, "x  "), (Words{"x", "  "}));
  EXPECT_EQ(split(PreTokenizer::kLlama3, "\thi!!\n\n"), (Words{"\thi", "!!\n\n"}));
  // Letters of any script; a combining mark is not a letter.
  EXPECT_EQ(split(PreTokenizer::kGpt2, " \xd0\xbf\xd1\x80\xd0\xb8 caf\xc3\xa9"),
            (Words{" \xd0\xbf\xd1\x80\xd0\xb8", " caf\xc3\xa9"}));
  EXPECT_EQ(split(PreTokenizer::kGpt2, "e\xcc\x81"), (Words{"e", "\xcc\x81"}));
  EXPECT_EQ(split(PreTokenizer::kLlama3, " \xf0\x9f\x98\x80\xf0\x9f\x98\x80x"),
            (Words{" \xf0\x9f\x98\x80\xf0\x9f\x98\x80", "x"}));
  // Invalid UTF-8 stays inside words (as punctuation) and nothing is lost.
  EXPECT_EQ(split(PreTokenizer::kGpt2, "a\xff\xfe b"), (Words{"a", "\xff\xfe", " b"}));
  EXPECT_TRUE(split(PreTokenizer::kGpt2, "").empty());
}

TEST(PreTokenizer, Names) {
  EXPECT_EQ(*pretokenizer_from_name("llama-bpe"), PreTokenizer::kLlama3);
  EXPECT_EQ(*pretokenizer_from_name("qwen2"), PreTokenizer::kQwen2);
  EXPECT_EQ(*pretokenizer_from_name("default"), PreTokenizer::kGpt2);
  EXPECT_EQ(*pretokenizer_from_name(""), PreTokenizer::kGpt2);
  EXPECT_EQ(pretokenizer_from_name("deepseek-llm").status().code(), StatusCode::kUnimplemented);
}

std::string hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// Splits each hex-encoded line of stdin with each pattern; prints, per
// pattern and line, the words hex-encoded and space-separated. Exits 3 when
// the `regex` module is missing.
const char kSplitScript[] = R"PY(
import sys
try:
    import regex
except ImportError:
    sys.exit(3)
contractions = r"'s|'t|'re|'ve|'m|'ll|'d"
patterns = {
    "gpt2": contractions + r"| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    "llama3": r"(?i:" + contractions + r")|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:" + contractions + r")|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
lines = [bytes.fromhex(l.strip()).decode("utf-8") for l in open(sys.argv[1])]
for name in ("gpt2", "llama3", "qwen2"):
    for text in lines:
        words = regex.findall(patterns[name], text)
        print(" ".join(w.encode("utf-8").hex() for w in words))
)PY";

TEST(PreTokenizer, MatchesPythonRegexOnRandomText) {
  // Pieces chosen to hit every alternative: contractions (ſ folds to s under
  // (?i)), letters of several scripts, digits and other numbers (Arabic-Indic
  // three, Roman twelve, superscript two), marks, emoji, Unicode spaces.
  const std::vector<std::string> alphabet = {
      "a", "Z", "xy", " ", "  ", "\t", "\n", "\r", "\r\n", "'", "'s", "'T", "'re", "'VE", "'m", "'ll", "'D", "'\xc5\xbf",
      "0", "12", "3456", "!", ".", "?!", "-", "\"", "\xc3\xa9", "\xd0\xb6", "\xe4\xb8\xad", "\xd8\xb9", "\xe0\xa4\x95",
      "\xd9\xa3", "\xe2\x85\xab", "\xc2\xb2", "\xcc\x81", "\xe0\xa4\xbf", "\xf0\x9f\x98\x80", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
      "\xc2\xa0", "\xe3\x80\x80", "\xe2\x80\xa8", "\xc2\x85", "\x0b", "\x1c", "$", "\xe2\x82\xac"};
  std::mt19937 rng(2024);
  std::vector<std::string> texts = {"Hello world's 123 4567 ...", "I'm   here\n\n\n  now!!\n", "  x", "x  ", "\n", " "};
  for (int i = 0; i < 400; ++i) {
    std::string t;
    for (int n = 1 + static_cast<int>(rng() % 10); n > 0; --n) t += alphabet[rng() % alphabet.size()];
    texts.push_back(t);
  }
  testing::TempDir dir;
  std::string input;
  for (const std::string& t : texts) input += hex(t) + "\n";
  testing::write_file(dir.file("in.txt"), input);
  const testing::CommandResult r = testing::run_command({"python3", "-c", kSplitScript, dir.file("in.txt")});
  if (r.exit_code == 3 || r.exit_code == 127 || (r.exit_code != 0 && r.err.find("No such file") != std::string::npos)) {
    GTEST_SKIP() << "python3 with the `regex` module is needed (Debian: python3-regex): " << r.err;
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  for (PreTokenizer kind : {PreTokenizer::kGpt2, PreTokenizer::kLlama3, PreTokenizer::kQwen2}) {
    for (const std::string& t : texts) {
      std::string expected;
      ASSERT_TRUE(std::getline(lines, expected));
      std::string got;
      for (std::string_view w : pretokenize(kind, t)) {
        if (!got.empty()) got += ' ';
        got += hex(w);
      }
      EXPECT_EQ(got, expected) << "pre-tokenizer " << static_cast<int>(kind) << " on " << ::testing::PrintToString(t);
    }
  }
}

// Prints the ranges of the letter (1), number (2) and whitespace (4) classes
// as "first last classes" lines, from unicodedata and `regex`'s \s (which
// matches nothing above U+3000, the last White_Space code point).
const char kClassScript[] = R"PY(
import sys, unicodedata
try:
    import regex
except ImportError:
    sys.exit(3)
print(unicodedata.unidata_version)
spaces = {ord(c) for c in regex.findall(r"\s", "".join(chr(cp) for cp in range(0x3001)))}
def classes(cp):
    cat = unicodedata.category(chr(cp))
    return (1 if cat[0] == "L" else 0) | (2 if cat[0] == "N" else 0) | (4 if cp in spaces else 0)
start, cur = 0, classes(0)
for cp in range(1, 0x110000):
    f = classes(cp)
    if f != cur:
        if cur:
            print(start, cp - 1, cur)
        start, cur = cp, f
if cur:
    print(start, 0x10FFFF, cur)
)PY";

TEST(UnicodeClass, MatchesPythonUnicodedataForEveryCodePoint) {
  const testing::CommandResult r = testing::run_command({"python3", "-c", kClassScript});
  if (r.exit_code != 0) GTEST_SKIP() << "python3 with the `regex` module is needed (Debian: python3-regex): " << r.err;
  std::istringstream in(r.out);
  std::string version;
  std::getline(in, version);
  if (version != unicode_table_version()) {
    GTEST_SKIP() << "python3's Unicode is " << version << ", the table's " << unicode_table_version();
  }
  std::string expected((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string got;
  char32_t start = 0;
  uint8_t cur = unicode_class(0);
  for (char32_t cp = 1; cp <= 0x110000; ++cp) {
    const uint8_t c = cp < 0x110000 ? unicode_class(cp) : 0xFF;
    if (c == cur) continue;
    if (cur) got += std::to_string(start) + " " + std::to_string(cp - 1) + " " + std::to_string(cur) + "\n";
    start = cp;
    cur = c;
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(unicode_class(0x110000), 0);
}

TEST(UnicodeClass, Utf8Reader) {
  const std::string s = "a\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe4\xb8";
  std::vector<char32_t> cps;
  for (size_t pos = 0; pos < s.size();) {
    const Utf8Unit u = next_utf8(s, pos);
    cps.push_back(u.cp);
    pos += u.bytes;
  }
  const char32_t bad = kInvalidUtf8;
  // Overlong "/", a surrogate, beyond U+10FFFF and a truncated sequence are byte by byte.
  EXPECT_EQ(cps, (std::vector<char32_t>{'a', 0xE9, 0x4E2D, 0x1F600, bad, bad, bad, bad, bad, bad, bad, bad, bad, bad,
                                        bad}));
  std::string out;
  for (char32_t cp : {char32_t{'a'}, char32_t{0xE9}, char32_t{0x4E2D}, char32_t{0x1F600}}) append_utf8(cp, out);
  EXPECT_EQ(out, s.substr(0, 10));
}

}  // namespace
}  // namespace tandem
