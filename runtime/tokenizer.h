// Tokenizer for llama2.c-format vocabularies (a SentencePiece BPE exported by
// llama2.c's tokenizer.py): per token a merge score and the piece's bytes.
//
// encode(): prepends the SentencePiece dummy space to non-empty text, maps each
// UTF-8 code point to its token or, when the vocabulary lacks it, to byte
// tokens <0xNN> (ids 3..258), then repeatedly merges the adjacent pair whose
// merged piece has the highest score. decode_piece(): byte tokens become their
// byte; a piece following BOS loses its leading space. Token ids: 0 <unk>,
// 1 <s> (BOS), 2 </s> (EOS), as llama2.c.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/status.h"

namespace tandem {

class Tokenizer {
 public:
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

  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  const std::string& piece(int id) const { return pieces_[id]; }
  float score(int id) const { return scores_[id]; }

  std::vector<int> encode(std::string_view text, bool add_bos, bool add_eos) const;
  // The bytes token `token` stands for when it follows `prev` (see above).
  // BOS and EOS stand for no bytes (""), as do ids outside the vocabulary.
  std::string decode_piece(int prev, int token) const;
  // decode_piece over a whole sequence (the first token's prev is BOS if it
  // follows one in `tokens`, else none).
  std::string decode(const std::vector<int>& tokens) const;

 private:
  static Result<Tokenizer> load(const std::string& path, int vocab_size);
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  // Pieces text can spell: excludes <unk>, BOS, EOS and the <0xNN> byte tokens.
  std::unordered_map<std::string, int> piece_to_id_;
  int max_token_length_ = 0;  // the file's header, validated; unused by encode
  // Added: byte -> id of its <0xNN> token (-1 if absent), found by piece text
  // rather than assumed to be byte+3, so odd vocabularies still round-trip.
  std::array<int, 256> byte_token_{};
  size_t longest_piece_ = 0;  // no pair whose pieces are longer in total can merge

  int byte_token(unsigned char b) const;  // kUnk when the vocabulary lacks it
  void append_piece_or_bytes(std::string_view s, std::string& scratch, std::vector<int>& out) const;
  int merged_id(int left, int right, std::string& scratch) const;  // -1: not a piece
  void merge_pairs(std::vector<int>& ids, size_t first, std::string& scratch) const;
};

}  // namespace tandem
