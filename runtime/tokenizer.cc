#include "runtime/tokenizer.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <queue>

#include "runtime/llama_weights.h"
#include "runtime/mapped_file.h"

namespace tandem {
namespace {

static_assert(std::endian::native == std::endian::little,
              "llama2.c tokenizer files are little-endian and read with memcpy");
static_assert(sizeof(float) == 4 && sizeof(int32_t) == 4);

// Far beyond any real piece (llama2.c vocabularies top out at a few dozen
// bytes); anything larger is a corrupt length, not a token.
constexpr int32_t kMaxPieceBytes = 1 << 20;
// A 128k vocabulary is ~2 MB; refuse what is clearly not a tokenizer (a
// checkpoint passed by mistake).
constexpr size_t kMaxFileBytes = size_t{1} << 30;
// llama2.c starts its best-pair search at -1e10 with a strict '>', so pairs
// scoring at or below it never merge; kept for identical output.
constexpr float kNoMergeScore = -1e10f;

// Bounds-checked little-endian cursor over the file bytes.
class Cursor {
 public:
  explicit Cursor(std::string_view data) : data_(data) {}
  size_t remaining() const { return data_.size() - pos_; }
  template <typename T>
  bool read(T* out) {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(out, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  std::string_view take(size_t n) {  // caller checked remaining()
    std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The byte a "<0xNN>" piece stands for, or -1 for any other piece.
int byte_piece_value(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

std::string token_at(int i, int vocab_size) {
  return "token " + std::to_string(i) + (vocab_size > 0 ? " of " + std::to_string(vocab_size) : "");
}

}  // namespace

Result<Tokenizer> Tokenizer::load_llama2c(const std::string& path, int vocab_size) {
  if (vocab_size <= 0) {
    return InvalidArgument(path + ": vocab_size must be positive, got " + std::to_string(vocab_size));
  }
  return load(path, vocab_size);
}

Result<Tokenizer> Tokenizer::load_llama2c_whole(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(Tokenizer t, load(path, 0));
  if (t.vocab_size() <= kEos) {
    return DataLoss(path + ": " + std::to_string(t.vocab_size()) + " tokens, fewer than <unk>, BOS and EOS");
  }
  return t;
}

// vocab_size 0: every record until the end of the file.
Result<Tokenizer> Tokenizer::load(const std::string& path, int vocab_size) {
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  if (file->size() > kMaxFileBytes)
    return DataLoss(path + ": " + std::to_string(file->size()) + " bytes is too large for a tokenizer file");
  const std::string_view data(file->data(), file->size());
  Cursor in(data);

  int32_t max_len = 0;
  if (!in.read(&max_len)) {
    return DataLoss(path + ": truncated: " + std::to_string(data.size()) +
                    " bytes, too short for the max_token_length header");
  }
  if (max_len < 0 || max_len > kMaxPieceBytes || static_cast<size_t>(max_len) > data.size()) {
    return DataLoss(path + ": absurd max_token_length " + std::to_string(max_len));
  }

  Tokenizer t;
  t.max_token_length_ = max_len;
  // Every token takes at least 8 bytes, so a lying vocab_size cannot make us
  // reserve more than the file could hold.
  const size_t reserve = vocab_size == 0 ? in.remaining() / 8 : std::min(static_cast<size_t>(vocab_size), in.remaining() / 8);
  t.pieces_.reserve(reserve);
  t.scores_.reserve(reserve);
  const bool whole = vocab_size == 0;
  for (int i = 0; whole ? in.remaining() > 0 && i < kMaxVocab : i < vocab_size; ++i) {
    float score = 0;
    int32_t len = 0;
    if (!in.read(&score) || !in.read(&len)) {
      return DataLoss(path + ": truncated at " + token_at(i, vocab_size) +
                      " (its score and length are missing)");
    }
    if (!std::isfinite(score)) return DataLoss(path + ": " + token_at(i, vocab_size) + " has a non-finite score");
    if (len < 0 || len > kMaxPieceBytes) {
      return DataLoss(path + ": " + token_at(i, vocab_size) + " has an absurd length " + std::to_string(len));
    }
    if (static_cast<size_t>(len) > in.remaining()) {
      return DataLoss(path + ": truncated at " + token_at(i, vocab_size) + ": length " + std::to_string(len) +
                      " but only " + std::to_string(in.remaining()) + " bytes remain");
    }
    t.pieces_.emplace_back(in.take(static_cast<size_t>(len)));
    t.scores_.push_back(score);
  }
  // Bytes after the last token are ignored, as llama2.c does: a tokenizer file
  // may hold more tokens than the model uses.

  if (whole && in.remaining() > 0) {
    return DataLoss(path + ": more than " + std::to_string(kMaxVocab) + " tokens");
  }
  t.byte_token_.fill(-1);
  for (int id = 0; id < t.vocab_size(); ++id) {
    const std::string& p = t.pieces_[id];
    t.longest_piece_ = std::max(t.longest_piece_, p.size());
    if (int b = byte_piece_value(p); b >= 0) {
      if (t.byte_token_[b] < 0) t.byte_token_[b] = id;
      continue;
    }
    // Text can never spell a control token; keeping "<unk>" or "\n<s>\n" out
    // of the lookup stops merges from forging one.
    if (id == kUnk || id == kBos || id == kEos) continue;
    t.piece_to_id_.emplace(p, id);  // first id wins on duplicate pieces
  }
  return t;
}

int Tokenizer::byte_token(unsigned char b) const {
  const int id = byte_token_[b];
  return id >= 0 ? id : kUnk;
}

void Tokenizer::append_piece_or_bytes(std::string_view s, std::string& scratch, std::vector<int>& out) const {
  scratch.assign(s);
  if (auto it = piece_to_id_.find(scratch); it != piece_to_id_.end()) {
    out.push_back(it->second);
    return;
  }
  for (char c : s) out.push_back(byte_token(static_cast<unsigned char>(c)));
}

int Tokenizer::merged_id(int left, int right, std::string& scratch) const {
  const std::string& a = pieces_[left];
  const std::string& b = pieces_[right];
  if (a.size() + b.size() > longest_piece_) return -1;
  scratch.assign(a);
  scratch.append(b);
  auto it = piece_to_id_.find(scratch);
  return it == piece_to_id_.end() ? -1 : it->second;
}

std::vector<int> Tokenizer::encode(std::string_view text, bool add_bos, bool add_eos) const {
  std::vector<int> ids;
  ids.reserve(text.size() + 3);
  if (add_bos) ids.push_back(kBos);
  const size_t first = ids.size();
  std::string scratch;
  if (!text.empty()) append_piece_or_bytes(" ", scratch, ids);  // SentencePiece's dummy prefix

  // llama2.c's grouping: a byte plus up to three following continuation bytes.
  // Invalid UTF-8 needs no special case: a group missing from the vocabulary
  // becomes one byte token per byte, so every byte string round-trips.
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    while (n < 4 && i + n < text.size() && is_utf8_continuation(text[i + n])) ++n;
    append_piece_or_bytes(text.substr(i, n), scratch, ids);
    i += n;
  }
  merge_pairs(ids, first, scratch);
  if (add_eos) ids.push_back(kEos);
  return ids;
}

// Same result as llama2.c's loop (repeatedly merge the best-scoring adjacent
// pair, leftmost on ties) in O(n log n) instead of O(n^2) lookups: a linked
// list of nodes plus a heap of candidate pairs, where entries made stale by an
// earlier merge are skipped. Node indices keep their left-to-right order, so
// "smallest left index" is llama2.c's "first pair" tie-break. BOS is left out
// (llama2.c includes it, but "\n<s>\n" can never start a merge).
void Tokenizer::merge_pairs(std::vector<int>& ids, size_t first, std::string& scratch) const {
  const int n = static_cast<int>(ids.size() - first);
  if (n < 2) return;
  std::vector<int> tok(ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end());
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    float score;
    int left, right;          // node indices
    int left_tok, right_tok;  // the tokens the pair held when scored
    int merged;
  };
  auto lower = [](const Candidate& a, const Candidate& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(lower)> heap(lower);
  auto consider = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const int right = next[left];
    const int id = merged_id(tok[left], tok[right], scratch);
    if (id >= 0 && scores_[id] > kNoMergeScore) heap.push({scores_[id], left, right, tok[left], tok[right], id});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);

  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    // A merged-away node holds -1, so this also rejects pairs whose left died.
    if (tok[c.left] != c.left_tok || next[c.left] != c.right || tok[c.right] != c.right_tok) continue;
    tok[c.left] = c.merged;
    tok[c.right] = -1;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }
  ids.resize(first);
  for (int i = 0; i >= 0; i = next[i]) ids.push_back(tok[i]);  // node 0 is never merged away
}

std::string Tokenizer::decode_piece(int prev, int token) const {
  if (token < 0 || token >= vocab_size() || token == kBos || token == kEos) return {};
  std::string_view p = pieces_[token];
  if (prev == kBos && !p.empty() && p.front() == ' ') p.remove_prefix(1);
  if (int b = byte_piece_value(p); b >= 0) return std::string(1, static_cast<char>(b));
  return std::string(p);
}

std::string Tokenizer::decode(const std::vector<int>& tokens) const {
  std::string out;
  int prev = -1;
  for (int t : tokens) {
    out += decode_piece(prev, t);
    prev = t;
  }
  return out;
}

}  // namespace tandem
