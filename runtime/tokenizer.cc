#include "runtime/tokenizer.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "runtime/llama_weights.h"
#include "runtime/mapped_file.h"
#include "runtime/tokenizer_internal.h"

namespace tandem {
namespace {

using tokenizer_internal::byte_piece_value;

static_assert(std::endian::native == std::endian::little,
              "llama2.c tokenizer files are little-endian and read with memcpy");
static_assert(sizeof(float) == 4 && sizeof(int32_t) == 4);

// Far beyond any real piece (llama2.c vocabularies top out at a few dozen
// bytes); anything larger is a corrupt length, not a token.
constexpr int32_t kMaxPieceBytes = 1 << 20;
// A 128k vocabulary is ~2 MB; refuse what is clearly not a tokenizer (a
// checkpoint passed by mistake).
constexpr size_t kMaxFileBytes = size_t{1} << 30;

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
  t.types_.resize(t.pieces_.size(), kTokenNormal);
  for (int id = 0; id < t.vocab_size(); ++id) {
    if (id == kUnk) t.types_[id] = kTokenUnknown;
    if (id == kBos || id == kEos) t.types_[id] = kTokenControl;
    if (byte_piece_value(t.pieces_[id]) >= 0) t.types_[id] = kTokenByte;
  }
  t.unk_ = t.vocab_size() > kUnk ? kUnk : -1;
  t.bos_ = t.vocab_size() > kBos ? kBos : -1;
  t.eos_ = t.vocab_size() > kEos ? kEos : -1;
  TANDEM_RETURN_IF_ERROR(t.index(nullptr));
  return t;
}


Status Tokenizer::index(const TokenizerSpec* spec) {
  all_pieces_.reserve(pieces_.size());
  for (int id = 0; id < vocab_size(); ++id) all_pieces_.emplace(pieces_[id], id);
  for (int id = 0; id < vocab_size(); ++id) {
    const uint8_t type = types_[id];
    if ((type != kTokenControl && type != kTokenUserDefined) || pieces_[id].empty()) continue;
    if (type == kTokenUserDefined) has_user_defined_ = true;
    specials_by_first_byte_[static_cast<unsigned char>(pieces_[id][0])].push_back(id);
  }
  for (std::vector<int>& ids : specials_by_first_byte_) {
    std::stable_sort(ids.begin(), ids.end(),
                     [this](int a, int b) { return pieces_[a].size() > pieces_[b].size(); });
  }
  if (eos_ >= 0) end_of_generation_.push_back(eos_);
  // Chat models name their end of turn as EOS and keep the base model's end
  // of text as well (Llama 3 Instruct: <|eot_id|> and <|end_of_text|>, both
  // in its generation_config.json): either ends a generation.
  for (const char* p : {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                        "<|endoftext|>"}) {
    const int id = token_id(p);
    if (id >= 0 && id != eos_ && types_[id] == kTokenControl) end_of_generation_.push_back(id);
  }
  return byte_level_ ? index_byte_level(*spec) : index_sentencepiece();
}

bool Tokenizer::is_end_of_generation(int id) const {
  return std::find(end_of_generation_.begin(), end_of_generation_.end(), id) != end_of_generation_.end();
}

int Tokenizer::token_id(std::string_view piece) const {
  auto it = all_pieces_.find(std::string(piece));
  return it == all_pieces_.end() ? -1 : it->second;
}

std::vector<Tokenizer::Fragment> Tokenizer::split_specials(std::string_view text, bool parse_special) const {
  std::vector<Fragment> out;
  if (!parse_special && !has_user_defined_) {
    if (!text.empty()) out.push_back({text, -1});
    return out;
  }
  size_t text_start = 0;
  for (size_t i = 0; i < text.size();) {
    int found = -1;
    for (int id : specials_by_first_byte_[static_cast<unsigned char>(text[i])]) {
      if (!parse_special && types_[id] == kTokenControl) continue;
      if (text.compare(i, pieces_[id].size(), pieces_[id]) == 0) {
        found = id;
        break;
      }
    }
    if (found < 0) {
      ++i;
      continue;
    }
    if (i > text_start) out.push_back({text.substr(text_start, i - text_start), -1});
    out.push_back({{}, found});
    i += pieces_[found].size();
    text_start = i;
  }
  if (text_start < text.size()) out.push_back({text.substr(text_start), -1});
  return out;
}

std::vector<int> Tokenizer::encode(std::string_view text, bool add_bos, bool add_eos, bool parse_special) const {
  std::vector<int> ids;
  ids.reserve(text.size() + 3);
  if (add_bos && bos_ >= 0) ids.push_back(bos_);
  // SentencePiece's dummy prefix goes on text at the start and after each
  // special token (llama.cpp's rule; Hugging Face's legacy Llama tokenizer
  // behaves the same).
  bool after_special = true;
  for (const Fragment& f : split_specials(text, parse_special)) {
    if (f.special >= 0) {
      ids.push_back(f.special);
      after_special = true;
    } else if (byte_level_) {
      encode_byte_level(f.text, ids);
    } else {
      encode_sentencepiece(f.text, after_special, ids);
      after_special = false;
    }
  }
  if (add_eos && eos_ >= 0) ids.push_back(eos_);
  return ids;
}

std::string Tokenizer::decode_piece(int prev, int token) const {
  if (token < 0 || token >= vocab_size()) return {};
  const uint8_t type = types_[token];
  if (type == kTokenControl || type == kTokenUnused) return {};
  if (type == kTokenUserDefined) return pieces_[token];
  return byte_level_ ? token_bytes_[token] : decode_sentencepiece(prev, token);
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
