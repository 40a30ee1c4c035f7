// Loading training text as token ids (dataset.h); the batch sampler is in
// batch_sampler.cc.
#include "runtime/train/dataset.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>

#include "runtime/atomic_file.h"
#include "runtime/mapped_file.h"
#include "runtime/tokenizer_writer.h"
#include "runtime/tokenizer.h"

namespace tandem::train {
namespace {

static_assert(std::endian::native == std::endian::little, "llama2.c tokenizer files are little-endian");

// One input and one target: the smallest part a window of one token fits.
constexpr size_t kMinPartTokens = 2;

std::string with_thousands(int64_t v) {
  const std::string digits = std::to_string(v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

Status check_fraction(const std::string& path, double train_fraction) {
  if (train_fraction > 0.0 && train_fraction < 1.0) return Status::Ok();
  return InvalidArgument(path + ": train_fraction must be strictly between 0 and 1, got " +
                         std::to_string(train_fraction));
}

// The text's bytes, kept mapped only while the corpus is built.
Result<std::shared_ptr<MappedFile>> map_text(const std::string& path) {
  auto file = MappedFile::open(path);
  if (!file.ok()) return file.status().with_context("training text");
  if ((*file)->size() == 0) return InvalidArgument("training text " + path + " is empty");
  return file;
}

// nanoGPT's prepare.py: the first int(n * fraction) characters train. The
// double product floors the same way Python's int() does.
size_t train_length(size_t n, double train_fraction) {
  return static_cast<size_t>(static_cast<double>(n) * train_fraction);
}

Status check_parts(const std::string& path, const TokenCorpus& c, const char* unit) {
  if (c.train.size() >= kMinPartTokens && c.val.size() >= kMinPartTokens) return Status::Ok();
  return InvalidArgument("training text " + path + " is too short: it splits into " + std::to_string(c.train.size()) +
                         " train and " + std::to_string(c.val.size()) + " validation " + unit +
                         ", each part needs at least " + std::to_string(kMinPartTokens));
}

// Each line, its '\n' included, encoded on its own with no BOS. encode() gives
// every line SentencePiece's dummy-prefix space, as SentencePiece's trainer
// treats each line as a sentence. A tokenizer without byte tokens turns
// bytes it cannot spell into <unk>: refused, as the model would learn noise.
Status encode_lines(const Tokenizer& tok, const std::string& tokenizer_path, const std::string& text_path,
                    std::string_view text, size_t first_line_number, std::vector<int>& out) {
  size_t line_number = first_line_number;
  for (size_t begin = 0; begin < text.size(); ++line_number) {
    const size_t newline = text.find('\n', begin);
    const size_t end = newline == std::string_view::npos ? text.size() : newline + 1;
    const std::vector<int> ids = tok.encode(text.substr(begin, end - begin), false, false);
    for (int id : ids) {
      if (id == Tokenizer::kUnk) {
        return InvalidArgument("tokenizer " + tokenizer_path + " cannot spell line " + std::to_string(line_number) +
                               " of " + text_path + " (it has no piece or byte token for some of its bytes)");
      }
    }
    out.insert(out.end(), ids.begin(), ids.end());
    begin = end;
  }
  return Status::Ok();
}

std::string piece_of_byte(unsigned char c) {
  // ASCII as itself, so the file reads naturally and the dummy space after
  // BOS decodes to nothing; other bytes as <0xNN> byte tokens, so a UTF-8
  // character the vocabulary has no piece for still encodes byte by byte.
  if (c < 0x80) return std::string(1, static_cast<char>(c));
  char piece[8];
  std::snprintf(piece, sizeof piece, "<0x%02X>", c);
  return piece;
}


}  // namespace

std::string TokenCorpus::describe() const {
  return with_thousands(static_cast<int64_t>(train.size())) + " train / " +
         with_thousands(static_cast<int64_t>(val.size())) + " val tokens, vocabulary " +
         std::to_string(vocab_size) + (chars.empty() ? " (tokenizer)" : " (characters)");
}

Result<TokenCorpus> load_char_corpus(const std::string& text_path, double train_fraction) {
  TANDEM_RETURN_IF_ERROR(check_fraction(text_path, train_fraction));
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, map_text(text_path));
  const auto* bytes = reinterpret_cast<const unsigned char*>(file->data());
  const size_t n = file->size();

  std::array<bool, 256> present{};
  for (size_t i = 0; i < n; ++i) present[bytes[i]] = true;
  TokenCorpus c;
  std::array<int, 256> id_of{};
  for (int b = 0; b < 256; ++b) {
    if (!present[b]) continue;
    id_of[b] = kFirstCharId + static_cast<int>(c.chars.size());
    c.chars += static_cast<char>(b);
  }
  c.vocab_size = kFirstCharId + static_cast<int>(c.chars.size());

  const size_t split = train_length(n, train_fraction);
  c.train.resize(split);
  c.val.resize(n - split);
  for (size_t i = 0; i < split; ++i) c.train[i] = id_of[bytes[i]];
  for (size_t i = split; i < n; ++i) c.val[i - split] = id_of[bytes[i]];
  TANDEM_RETURN_IF_ERROR(check_parts(text_path, c, "characters"));
  return c;
}

Result<TokenCorpus> load_tokenized_corpus(const std::string& text_path, const std::string& tokenizer_path,
                                          double train_fraction) {
  TANDEM_RETURN_IF_ERROR(check_fraction(text_path, train_fraction));
  // A tokenizer file does not store its vocabulary size: all its records are it.
  auto tok = Tokenizer::load_llama2c_whole(tokenizer_path);
  if (!tok.ok()) return tok.status().with_context("tokenizer " + tokenizer_path + " (for " + text_path + ")");
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, map_text(text_path));
  const std::string_view text(file->data(), file->size());

  // Split the text, not the tokens, as prepare.py does; moved back to the
  // start of a UTF-8 character so neither part holds half of one.
  size_t split = train_length(text.size(), train_fraction);
  while (split > 0 && (static_cast<unsigned char>(text[split]) & 0xC0) == 0x80) --split;
  size_t split_line = 1;
  for (size_t i = 0; i < split; ++i) split_line += text[i] == '\n';

  TokenCorpus c;
  c.vocab_size = tok->vocab_size();
  TANDEM_RETURN_IF_ERROR(encode_lines(*tok, tokenizer_path, text_path, text.substr(0, split), 1, c.train));
  TANDEM_RETURN_IF_ERROR(encode_lines(*tok, tokenizer_path, text_path, text.substr(split), split_line, c.val));
  TANDEM_RETURN_IF_ERROR(check_parts(text_path, c, "tokens"));
  return c;
}

Status check_corpus(const TokenCorpus& corpus, int64_t seq_len, int64_t vocab_size) {
  if (seq_len < 1) return InvalidArgument("seq_len must be positive, got " + std::to_string(seq_len));
  const auto need = static_cast<size_t>(seq_len) + 1;
  for (const auto& [name, part] : {std::pair{"train", &corpus.train}, std::pair{"validation", &corpus.val}}) {
    if (part->size() < need) {
      return InvalidArgument(std::string("the corpus's ") + name + " part has " + std::to_string(part->size()) +
                             " tokens, fewer than one window of seq_len + 1 = " + std::to_string(need) +
                             ": use a longer text or a shorter seq_len");
    }
    for (size_t i = 0; i < part->size(); ++i) {
      const int id = (*part)[i];
      if (id < 0 || id >= vocab_size) {
        return InvalidArgument(std::string("the corpus's ") + name + " part holds token id " + std::to_string(id) +
                               " at position " + std::to_string(i) + ", outside the model's vocabulary of " +
                               std::to_string(vocab_size) + " (the corpus has " +
                               std::to_string(corpus.vocab_size) + ")");
      }
    }
  }
  return Status::Ok();
}

Result<std::string> char_tokenizer_bytes(const std::string& chars) {
  if (chars.empty()) return InvalidArgument("a character tokenizer needs at least one character");
  for (size_t i = 1; i < chars.size(); ++i) {
    if (static_cast<unsigned char>(chars[i - 1]) >= static_cast<unsigned char>(chars[i]))
      return InvalidArgument("a character tokenizer's characters must be distinct bytes in increasing order");
  }
  std::vector<std::string> pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};  // llama2.c's ids 0..2
  for (char c : chars) pieces.push_back(piece_of_byte(static_cast<unsigned char>(c)));
  // All scores 0: no piece is two others joined, so merges never happen.
  const std::vector<float> scores(pieces.size(), 0.0f);
  return llama2c_tokenizer_bytes(pieces, scores);
}

Status write_char_tokenizer(const std::string& chars, const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(std::string bytes, char_tokenizer_bytes(chars));
  return write_file_atomically(path, bytes);
}

}  // namespace tandem::train
