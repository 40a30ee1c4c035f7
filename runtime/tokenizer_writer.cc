#include "runtime/tokenizer_writer.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/atomic_file.h"
#include "runtime/llama_weights.h"

namespace tandem {
namespace {

static_assert(std::endian::native == std::endian::little, "llama2.c tokenizer files are little-endian");
static_assert(sizeof(float) == 4 && sizeof(int32_t) == 4);

constexpr char kFirstPrintable = ' ';
constexpr char kLastPrintable = '~';
constexpr int kPrintable = kLastPrintable - kFirstPrintable + 1;

template <typename T>
void append_raw(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

// The k-th filler piece (k >= 0): a space, then the k-th lowercase string in
// order of length, then alphabetically ("a".."z", "aa".."zz", ...).
std::string filler_piece(int64_t k) {
  int64_t count = 26;  // strings of the current length
  int length = 1;
  while (k >= count) {
    k -= count;
    count *= 26;
    ++length;
  }
  std::string piece(static_cast<size_t>(length) + 1, ' ');
  for (int i = length; i >= 1; --i) {
    piece[static_cast<size_t>(i)] = static_cast<char>('a' + k % 26);
    k /= 26;
  }
  return piece;
}

std::string piece_at(int id) {
  if (id == 0) return "<unk>";
  if (id == 1) return "\n<s>\n";
  if (id == 2) return "\n</s>\n";
  if (id < kFirstSyntheticPiece) {
    char byte[7];
    std::snprintf(byte, sizeof byte, "<0x%02X>", id - 3);
    return byte;
  }
  const int rank = id - kFirstSyntheticPiece;
  if (rank < kPrintable) return std::string(1, static_cast<char>(kFirstPrintable + rank));
  return filler_piece(rank - kPrintable);
}

}  // namespace

Result<std::string> synthetic_llama2c_tokenizer(int vocab_size) {
  if (vocab_size < kMinSyntheticVocab || vocab_size > kMaxVocab) {
    return InvalidArgument("a synthetic tokenizer needs a vocabulary of " + std::to_string(kMinSyntheticVocab) +
                           " (<unk>, BOS, EOS, the 256 byte tokens and \" \") to " + std::to_string(kMaxVocab) +
                           " tokens, got " + std::to_string(vocab_size));
  }
  std::vector<std::string> pieces(static_cast<size_t>(vocab_size));
  std::vector<float> scores(static_cast<size_t>(vocab_size));
  for (int id = 0; id < vocab_size; ++id) {
    pieces[id] = piece_at(id);
    // llama2.c's export scores control and byte tokens 0. The rest descend
    // by rank, exactly in float (kMaxVocab < 2^24), so a shorter filler
    // always outranks a longer one and merges build words left to right.
    scores[id] = id < kFirstSyntheticPiece ? 0.0f : -static_cast<float>(id - kFirstSyntheticPiece);
  }
  return llama2c_tokenizer_bytes(pieces, scores);
}

std::string llama2c_tokenizer_bytes(std::span<const std::string> pieces, std::span<const float> scores) {
  TANDEM_CHECK(pieces.size() == scores.size());
  size_t longest = 0;
  size_t bytes = sizeof(int32_t);
  for (const std::string& p : pieces) {
    longest = std::max(longest, p.size());
    bytes += 2 * sizeof(int32_t) + p.size();
  }
  std::string out;
  out.reserve(bytes);
  append_raw(out, static_cast<int32_t>(longest));
  for (size_t id = 0; id < pieces.size(); ++id) {
    append_raw(out, scores[id]);
    append_raw(out, static_cast<int32_t>(pieces[id].size()));
    out += pieces[id];
  }
  return out;
}

Status write_synthetic_llama2c_tokenizer(int vocab_size, const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(std::string bytes, synthetic_llama2c_tokenizer(vocab_size));
  return write_file_atomically(path, bytes);
}

}  // namespace tandem
