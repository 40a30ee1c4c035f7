// Tokenizers: SentencePiece-style BPE by scores (llama2.c vocabularies, and
// TokenizerSpec model "llama") and byte-level BPE by ranked merges
// (TokenizerSpec model "gpt2": Llama 3, Qwen2, GPT-2).
//
// SentencePiece (tokenizer_sentencepiece.cc): prepends the dummy space to a
// text fragment at the start or after a special token, maps each UTF-8 code
// point (llama2.c's grouping: a byte plus up to three continuation bytes) to
// its piece or, when the vocabulary lacks it, to byte tokens <0xNN>, then
// repeatedly merges the adjacent pair whose merged piece scores highest.
// Spaces are "▁" (U+2581) in a spec's pieces and " " in llama2.c's; decode
// turns them back into spaces, byte tokens into their byte, and a piece
// following BOS loses its leading space. As in SentencePiece, a literal "▁"
// in the text reads as a space. A byte with no <0xNN> token becomes UNK
// (id 0 if the vocabulary names no UNK).
//
// Byte-level BPE (tokenizer_byte_level.cc): splits each text fragment with the
// spec's pre-tokenizer (pretokenizer.h), spells each word's bytes in GPT-2's
// byte-to-character alphabet, and merges by rank (earlier merges first).
// Llama 3's pre-tokenizer also takes a word the vocabulary holds whole as one
// token before merging (its tokenizer.json's ignore_merges).
//
// Special tokens, both flavours: user-defined tokens (type 4) are cut out of
// the text literally, and control tokens (type 3) too when encode's
// `parse_special` is set (rendered chat templates need it; user text should
// not, so that it cannot forge a control token). At each position the longest
// special piece that starts there wins (Hugging Face's added-tokens rule).
// Control and unused tokens decode to "", user-defined ones to their text.
//
// Token types are GGUF's: 1 normal, 2 unknown, 3 control, 4 user-defined,
// 5 unused, 6 byte. llama2.c files get them from their layout: id 0 <unk>
// unknown, 1 <s> (BOS) and 2 </s> (EOS) control, <0xNN> byte.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/pretokenizer.h"
#include "runtime/status.h"

namespace tandem {

struct TokenizerSpec;  // runtime/model_source.h

enum TokenType : uint8_t {
  kTokenNormal = 1,
  kTokenUnknown = 2,
  kTokenControl = 3,
  kTokenUserDefined = 4,
  kTokenUnused = 5,
  kTokenByte = 6,
};

class Tokenizer {
 public:
  // llama2.c's fixed ids. Code that may hold any tokenizer uses unk_id(),
  // bos_id() and eos_id() instead.
  static constexpr int kUnk = 0;
  static constexpr int kBos = 1;
  static constexpr int kEos = 2;

  // Loads a llama2.c tokenizer file holding `vocab_size` tokens (the model's
  // vocabulary size, from its header). Errors name the file and the problem:
  // missing file, truncation, absurd lengths, fewer tokens than vocab_size.
  static Result<Tokenizer> load_llama2c(const std::string& path, int vocab_size);
  // Every token record the file holds, for a tokenizer no model header sizes
  // yet (training builds its model around it). A partial record at the end,
  // or fewer than the three control tokens, is an error.
  static Result<Tokenizer> load_llama2c_whole(const std::string& path);

  // The tokenizer a model file embeds, for a model of `vocab_size` ids.
  // A token list shorter than vocab_size is padded with unused tokens
  // "[PAD<id>]" (checkpoints round their embedding up; llama.cpp pads the
  // same way); a longer one is an error, as are: an empty vocabulary,
  // scores/types whose count differs from the tokens', a type outside 0..6
  // (0, "undefined", counts as normal), a byte token that is not <0xNN>,
  // BOS/EOS/UNK/PAD ids outside the vocabulary, add_bos without a BOS, a
  // merge that is not "left right" over known tokens whose concatenation is
  // a token, a byte-level vocabulary missing one of the 256 byte characters.
  // An unknown model or pre-tokenizer is Unimplemented, naming it. Without
  // token types, BOS/EOS count as control, UNK as unknown and (llama) <0xNN>
  // pieces as bytes; everything else as normal.
  static Result<Tokenizer> from_spec(const TokenizerSpec& spec, int vocab_size);

  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  const std::string& piece(int id) const { return pieces_[id]; }
  float score(int id) const { return scores_[id]; }
  TokenType token_type(int id) const { return static_cast<TokenType>(types_[id]); }
  bool is_byte_level() const { return byte_level_; }

  // -1 when the vocabulary has none.
  int bos_id() const { return bos_; }
  int eos_id() const { return eos_; }
  int unk_id() const { return unk_; }
  // Whether a prompt gets BOS / EOS by default (the spec's add_bos/add_eos;
  // llama2.c: BOS yes, EOS no).
  bool adds_bos() const { return add_bos_; }
  bool adds_eos() const { return add_eos_; }
  bool is_control(int id) const { return id >= 0 && id < vocab_size() && types_[id] == kTokenControl; }
  // EOS, and the control tokens chat models end a turn or a text with
  // (<|eot_id|>, <|eom_id|>, <|end_of_text|>, <|im_end|>, <|end|>,
  // <end_of_turn>, <|endoftext|>).
  bool is_end_of_generation(int id) const;
  // The id whose piece is exactly `piece` (as stored: "▁the", "Ġthe",
  // "<|eot_id|>"), the first such; -1 if none.
  int token_id(std::string_view piece) const;

  // BOS/EOS are added only when asked for and the vocabulary has them.
  std::vector<int> encode(std::string_view text, bool add_bos, bool add_eos) const {
    return encode(text, add_bos, add_eos, /*parse_special=*/false);
  }
  std::vector<int> encode(std::string_view text, bool add_bos, bool add_eos, bool parse_special) const;
  // The bytes token `token` stands for when it follows `prev` (see above).
  // Control and unused tokens stand for no bytes (""), as do ids outside the
  // vocabulary.
  std::string decode_piece(int prev, int token) const;
  // decode_piece over a whole sequence (the first token's prev is none).
  std::string decode(const std::vector<int>& tokens) const;

 private:
  static Result<Tokenizer> load(const std::string& path, int vocab_size);
  // Builds the lookups from pieces_/types_ (and the merges, byte-level).
  Status index(const TokenizerSpec* spec);
  Status index_sentencepiece();
  Status index_byte_level(const TokenizerSpec& spec);

  struct Fragment {
    std::string_view text;  // empty when `special` is set
    int special = -1;
  };
  std::vector<Fragment> split_specials(std::string_view text, bool parse_special) const;

  // SentencePiece (tokenizer_sentencepiece.cc)
  void encode_sentencepiece(std::string_view text, bool dummy_prefix, std::vector<int>& out) const;
  int byte_token(unsigned char b) const;  // unk_ when the vocabulary lacks it
  void append_piece_or_bytes(std::string_view s, std::string& scratch, std::vector<int>& out) const;
  std::string decode_sentencepiece(int prev, int token) const;

  // Byte-level BPE (tokenizer_byte_level.cc)
  void encode_byte_level(std::string_view text, std::vector<int>& out) const;

  bool byte_level_ = false;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<uint8_t> types_;
  int bos_ = -1, eos_ = -1, unk_ = -1;
  bool add_bos_ = true, add_eos_ = false;
  std::unordered_map<std::string, int> all_pieces_;   // token_id(); first id wins
  std::vector<int> end_of_generation_;
  // Control and user-defined ids by their piece's first byte, longest first.
  std::array<std::vector<int>, 256> specials_by_first_byte_;
  bool has_user_defined_ = false;

  // SentencePiece
  std::string space_ = " ";  // how pieces spell a space: " " (llama2.c) or "▁"
  int max_token_length_ = 0;  // llama2.c's header, validated; unused by encode
  // Pieces text can spell (normal and user-defined), for merges.
  std::unordered_map<std::string, int> piece_to_id_;
  // byte -> id of its <0xNN> token (-1 if absent), found by piece text rather
  // than assumed to be byte+3, so odd vocabularies still round-trip.
  std::array<int, 256> byte_token_{};
  size_t longest_piece_ = 0;  // no pair whose pieces are longer in total can merge

  // Byte-level BPE
  PreTokenizer pre_ = PreTokenizer::kGpt2;
  bool ignore_merges_ = false;
  struct Merge {
    int rank;
    int merged;
  };
  std::unordered_map<uint64_t, Merge> merges_;  // (left << 32 | right) -> merge
  std::array<int, 256> byte_symbol_{};           // the token of each byte's character
  std::array<std::string, 256> byte_chars_;      // each byte's character, UTF-8
  std::vector<std::string> token_bytes_;         // what each token decodes to
};

}  // namespace tandem
