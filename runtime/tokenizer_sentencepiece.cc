// The SentencePiece half of Tokenizer (tokenizer.h): llama2.c vocabularies and
// TokenizerSpec model "llama".
#include <algorithm>

#include "runtime/bpe_merge.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_internal.h"

namespace tandem {
namespace {

using tokenizer_internal::byte_piece_value;
using tokenizer_internal::kNoMergeScore;

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// `s` with every " " spelled as `space`.
void spell_spaces(std::string_view s, const std::string& space, std::string& out) {
  out.clear();
  for (char c : s) {
    if (c == ' ') {
      out += space;
    } else {
      out += c;
    }
  }
}

}  // namespace

Status Tokenizer::index_sentencepiece() {
  byte_token_.fill(-1);
  for (int id = 0; id < vocab_size(); ++id) {
    const std::string& p = pieces_[id];
    longest_piece_ = std::max(longest_piece_, p.size());
    if (types_[id] == kTokenByte) {
      const int b = byte_piece_value(p);
      if (b < 0) {
        return InvalidArgument("token " + std::to_string(id) + " is a byte token but its piece \"" + p +
                               "\" is not <0xNN>");
      }
      if (byte_token_[b] < 0) byte_token_[b] = id;
      continue;
    }
    // Text can never spell a control token; keeping "<unk>" or "\n<s>\n" out
    // of the lookup stops merges from forging one.
    if (types_[id] != kTokenNormal && types_[id] != kTokenUserDefined) continue;
    piece_to_id_.emplace(p, id);  // first id wins on duplicate pieces
  }
  return Status::Ok();
}

int Tokenizer::byte_token(unsigned char b) const {
  const int id = byte_token_[b];
  return id >= 0 ? id : std::max(unk_, 0);
}

// `s` is raw text: its spaces are looked up as the vocabulary spells them,
// but a miss falls back to the raw bytes, so every byte string round-trips.
void Tokenizer::append_piece_or_bytes(std::string_view s, std::string& scratch, std::vector<int>& out) const {
  if (space_ == " ") {
    scratch.assign(s);
  } else {
    spell_spaces(s, space_, scratch);
  }
  if (auto it = piece_to_id_.find(scratch); it != piece_to_id_.end()) {
    out.push_back(it->second);
    return;
  }
  for (char c : s) out.push_back(byte_token(static_cast<unsigned char>(c)));
}

void Tokenizer::encode_sentencepiece(std::string_view text, bool dummy_prefix, std::vector<int>& out) const {
  std::vector<int> symbols;
  symbols.reserve(text.size() + 1);
  std::string scratch;
  if (dummy_prefix && !text.empty()) append_piece_or_bytes(" ", scratch, symbols);

  // llama2.c's grouping: a byte plus up to three following continuation bytes.
  // Invalid UTF-8 needs no special case: a group missing from the vocabulary
  // becomes one byte token per byte.
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    while (n < 4 && i + n < text.size() && is_utf8_continuation(text[i + n])) ++n;
    append_piece_or_bytes(text.substr(i, n), scratch, symbols);
    i += n;
  }
  // A pair merges into the piece that spells their concatenation, ranked by
  // that piece's score.
  merge_adjacent(symbols, [&](int left, int right) -> MergeCandidate {
    const std::string& a = pieces_[left];
    const std::string& b = pieces_[right];
    if (a.size() + b.size() > longest_piece_) return {};
    scratch.assign(a);
    scratch.append(b);
    auto it = piece_to_id_.find(scratch);
    if (it == piece_to_id_.end() || !(scores_[it->second] > kNoMergeScore)) return {};
    return {scores_[it->second], it->second};
  });
  out.insert(out.end(), symbols.begin(), symbols.end());
}

std::string Tokenizer::decode_sentencepiece(int prev, int token) const {
  std::string_view p = pieces_[token];
  if (types_[token] == kTokenByte) return std::string(1, static_cast<char>(byte_piece_value(p)));
  std::string out;
  if (space_ == " ") {
    out.assign(p);
  } else {
    for (size_t pos = 0; pos < p.size();) {
      if (p.compare(pos, space_.size(), space_) == 0) {
        out += ' ';
        pos += space_.size();
      } else {
        out += p[pos++];
      }
    }
  }
  if (prev == bos_ && bos_ >= 0 && !out.empty() && out.front() == ' ') out.erase(0, 1);
  return out;
}

}  // namespace tandem
