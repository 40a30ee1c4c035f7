// The byte-level BPE half of Tokenizer (tokenizer.h): TokenizerSpec model
// "gpt2" (GPT-2, Llama 3, Qwen2).
#include <string>

#include "runtime/bpe_merge.h"
#include "runtime/model_source.h"
#include "runtime/tokenizer.h"
#include "runtime/unicode_class.h"

namespace tandem {
namespace {

// GPT-2's alphabet: printable Latin-1 bytes stand for themselves; the other
// 68 (controls, space, DEL, NBSP, soft hyphen) take U+0100 upwards in byte
// order, so that no piece holds whitespace or a control character.
std::array<char32_t, 256> byte_to_char() {
  std::array<char32_t, 256> map{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    map[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

uint64_t pair_key(int left, int right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

Status Tokenizer::index_byte_level(const TokenizerSpec& spec) {
  TANDEM_ASSIGN_OR_RETURN(pre_, pretokenizer_from_name(spec.pre));
  ignore_merges_ = pre_ == PreTokenizer::kLlama3;

  const std::array<char32_t, 256> to_char = byte_to_char();
  std::array<int, 324> char_to_byte;  // every mapped character is below U+0144
  char_to_byte.fill(-1);
  for (int b = 0; b < 256; ++b) {
    char_to_byte[to_char[b]] = b;
    byte_chars_[b].clear();
    append_utf8(to_char[b], byte_chars_[b]);
    const int id = token_id(byte_chars_[b]);
    if (id < 0) {
      return InvalidArgument("the byte-level vocabulary has no token for byte " + std::to_string(b) + " (\"" +
                             byte_chars_[b] + "\")");
    }
    byte_symbol_[b] = id;
  }

  // What each token decodes to: its characters mapped back to bytes. A
  // character outside the alphabet (no byte-level vocabulary has one in a
  // normal token) stands for its own UTF-8.
  token_bytes_.assign(pieces_.size(), {});
  for (int id = 0; id < vocab_size(); ++id) {
    const std::string& p = pieces_[id];
    std::string& out = token_bytes_[id];
    for (size_t pos = 0; pos < p.size();) {
      const Utf8Unit u = next_utf8(p, pos);
      if (u.cp < char_to_byte.size() && char_to_byte[u.cp] >= 0) {
        out += static_cast<char>(char_to_byte[u.cp]);
      } else {
        out.append(p, pos, u.bytes);
      }
      pos += u.bytes;
    }
  }

  merges_.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const std::string& m = spec.merges[rank];
    const std::string what = "merge " + std::to_string(rank) + " \"" + m + "\"";
    // From the second byte: a piece is never empty, so a leading space is
    // part of the left piece.
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (space == std::string::npos) return InvalidArgument(what + " is not two pieces separated by a space");
    const std::string_view left(m.data(), space), right(m.data() + space + 1, m.size() - space - 1);
    const int l = token_id(left), r = token_id(right);
    if (l < 0) return InvalidArgument(what + ": \"" + std::string(left) + "\" is not in the vocabulary");
    if (r < 0) return InvalidArgument(what + ": \"" + std::string(right) + "\" is not in the vocabulary");
    const int merged = token_id(std::string(left) + std::string(right));
    if (merged < 0) {
      return InvalidArgument(what + ": the merged piece \"" + std::string(left) + std::string(right) +
                             "\" is not in the vocabulary");
    }
    merges_.emplace(pair_key(l, r), Merge{static_cast<int>(rank), merged});  // first rank wins
  }
  return Status::Ok();
}

void Tokenizer::encode_byte_level(std::string_view text, std::vector<int>& out) const {
  std::vector<int> symbols;
  std::string spelled;
  for (std::string_view word : pretokenize(pre_, text)) {
    if (ignore_merges_) {
      spelled.clear();
      for (char c : word) spelled += byte_chars_[static_cast<unsigned char>(c)];
      const int whole = token_id(spelled);
      if (whole >= 0 && (types_[whole] == kTokenNormal || types_[whole] == kTokenByte)) {
        out.push_back(whole);
        continue;
      }
    }
    symbols.clear();
    for (char c : word) symbols.push_back(byte_symbol_[static_cast<unsigned char>(c)]);
    merge_adjacent(symbols, [this](int left, int right) -> MergeCandidate {
      auto it = merges_.find(pair_key(left, right));
      if (it == merges_.end()) return {};
      return {-static_cast<double>(it->second.rank), it->second.merged};
    });
    out.insert(out.end(), symbols.begin(), symbols.end());
  }
}

}  // namespace tandem
