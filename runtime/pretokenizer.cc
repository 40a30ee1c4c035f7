#include "runtime/pretokenizer.h"

#include <string>

#include "runtime/unicode_class.h"

namespace tandem {
namespace {

constexpr char32_t kLongS = 0x17F;  // 'ſ': case-folds to 's' under (?i)

// The text as code points with their classes; an invalid byte is a unit
// classed as punctuation.
struct Unit {
  char32_t cp;
  uint8_t cls;
  size_t offset;  // byte offset in the text
};

std::vector<Unit> units_of(std::string_view text) {
  std::vector<Unit> units;
  units.reserve(text.size() + 1);
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Unit u = next_utf8(text, pos);
    units.push_back({u.cp, u.cp == kInvalidUtf8 ? uint8_t{0} : unicode_class(u.cp), pos});
    pos += u.bytes;
  }
  units.push_back({0, 0, text.size()});  // sentinel: never matches a class or a character
  return units;
}

// Matches one word at units[i] (i < n) and returns its length in units (>= 1).
class Scanner {
 public:
  Scanner(const std::vector<Unit>& units, PreTokenizer kind) : u_(units), n_(units.size() - 1), kind_(kind) {}

  size_t match(size_t i) const {
    if (size_t len = contraction(i)) return len;
    return kind_ == PreTokenizer::kGpt2 ? match_gpt2(i) : match_cl100k(i, kind_ == PreTokenizer::kLlama3 ? 3 : 1);
  }

 private:
  bool letter(size_t i) const { return i < n_ && (u_[i].cls & kUnicodeLetter); }
  bool number(size_t i) const { return i < n_ && (u_[i].cls & kUnicodeNumber); }
  bool space(size_t i) const { return i < n_ && (u_[i].cls & kUnicodeWhitespace); }
  bool other(size_t i) const { return i < n_ && u_[i].cls == 0; }  // [^\s\p{L}\p{N}]
  bool is(size_t i, char32_t c) const { return i < n_ && u_[i].cp == c; }
  bool newline(size_t i) const { return is(i, '\r') || is(i, '\n'); }

  // The letter at i, lower-cased where the pattern is case-insensitive.
  bool letter_is(size_t i, char c) const {
    if (is(i, static_cast<char32_t>(c))) return true;
    if (kind_ == PreTokenizer::kGpt2 || i >= n_) return false;
    if (c == 's' && u_[i].cp == kLongS) return true;
    return u_[i].cp == static_cast<char32_t>(c - 'a' + 'A');
  }

  size_t contraction(size_t i) const {
    if (!is(i, '\'')) return 0;
    for (char c : {'s', 't', 'm', 'd'}) {
      if (letter_is(i + 1, c)) return 2;
    }
    for (const char* pair : {"re", "ve", "ll"}) {
      if (letter_is(i + 1, pair[0]) && letter_is(i + 2, pair[1])) return 3;
    }
    return 0;
  }

  template <typename Pred>
  size_t run_end(size_t i, Pred pred) const {
    while (i < n_ && pred(i)) ++i;
    return i;
  }

  // \s+(?!\S)|\s+ at a whitespace unit: the whole run at the end of the
  // text; before anything else the run less its last unit, which then
  // starts the next word, unless the run is that one unit.
  size_t whitespace_run(size_t i) const {
    const size_t end = run_end(i, [this](size_t k) { return space(k); });
    if (end == n_ || end - i == 1) return end - i;
    return end - 1 - i;
  }

  size_t match_gpt2(size_t i) const {
    const size_t j = is(i, ' ') ? i + 1 : i;
    if (letter(j)) return run_end(j, [this](size_t k) { return letter(k); }) - i;
    if (number(j)) return run_end(j, [this](size_t k) { return number(k); }) - i;
    if (other(j)) return run_end(j, [this](size_t k) { return other(k); }) - i;
    return whitespace_run(i);
  }

  // Llama 3's (OpenAI cl100k's) pattern, and Qwen2's with max_digits 1.
  size_t match_cl100k(size_t i, size_t max_digits) const {
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (letter(i)) return run_end(i, [this](size_t k) { return letter(k); }) - i;
    if (!newline(i) && !number(i) && letter(i + 1)) return run_end(i + 1, [this](size_t k) { return letter(k); }) - i;
    // \p{N}{1,3}
    if (number(i)) {
      size_t end = i;
      while (end < n_ && end - i < max_digits && number(end)) ++end;
      return end - i;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    const size_t j = is(i, ' ') ? i + 1 : i;
    if (other(j)) {
      const size_t end = run_end(j, [this](size_t k) { return other(k); });
      return run_end(end, [this](size_t k) { return newline(k); }) - i;
    }
    // \s*[\r\n]+ : through the last newline of the whitespace run
    const size_t end = run_end(i, [this](size_t k) { return space(k); });
    for (size_t k = end; k > i; --k) {
      if (newline(k - 1)) return k - i;
    }
    return whitespace_run(i);
  }

  const std::vector<Unit>& u_;
  size_t n_;
  PreTokenizer kind_;
};

}  // namespace

Result<PreTokenizer> pretokenizer_from_name(std::string_view name) {
  if (name.empty() || name == "gpt2" || name == "default") return PreTokenizer::kGpt2;
  if (name == "llama-bpe" || name == "llama3") return PreTokenizer::kLlama3;
  if (name == "qwen2") return PreTokenizer::kQwen2;
  return Unimplemented("pre-tokenizer \"" + std::string(name) +
                       "\" is not supported (known: gpt2, default, llama-bpe, llama3, qwen2)");
}

std::vector<std::string_view> pretokenize(PreTokenizer kind, std::string_view text) {
  const std::vector<Unit> units = units_of(text);
  const Scanner scanner(units, kind);
  std::vector<std::string_view> words;
  for (size_t i = 0; i + 1 < units.size();) {
    const size_t len = scanner.match(i);
    words.push_back(text.substr(units[i].offset, units[i + len].offset - units[i].offset));
    i += len;
  }
  return words;
}

}  // namespace tandem
