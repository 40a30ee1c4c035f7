// Tokenizer::from_spec (tokenizer.h): validates what a model file says about
// its tokenizer before building one from it.
#include <cmath>
#include <string>

#include "runtime/llama_weights.h"
#include "runtime/model_source.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_internal.h"

namespace tandem {
namespace {

const char kSpmSpace[] = "\xe2\x96\x81";  // U+2581, SentencePiece's space

Status check_id(const char* what, int32_t id, int vocab_size) {
  if (id < -1 || id >= vocab_size) {
    return InvalidArgument(std::string("tokenizer ") + what + " id " + std::to_string(id) +
                           " is outside the vocabulary of " + std::to_string(vocab_size) + " tokens");
  }
  return Status::Ok();
}

}  // namespace

Result<Tokenizer> Tokenizer::from_spec(const TokenizerSpec& spec, int vocab_size) {
  if (spec.model != "llama" && spec.model != "gpt2") {
    return Unimplemented("tokenizer model \"" + spec.model + "\" is not supported (known: llama, gpt2)");
  }
  const size_t n = spec.tokens.size();
  if (n == 0) return InvalidArgument("the tokenizer's vocabulary is empty");
  if (vocab_size <= 0 || vocab_size > kMaxVocab) {
    return InvalidArgument("vocab_size " + std::to_string(vocab_size) + " is outside [1, " +
                           std::to_string(kMaxVocab) + "]");
  }
  if (n > static_cast<size_t>(vocab_size)) {
    return InvalidArgument("the tokenizer has " + std::to_string(n) + " tokens, more than the model's vocabulary of " +
                           std::to_string(vocab_size));
  }
  const bool llama = spec.model == "llama";
  if (llama ? spec.scores.size() != n : !spec.scores.empty() && spec.scores.size() != n) {
    return InvalidArgument("the tokenizer has " + std::to_string(spec.scores.size()) + " scores for " +
                           std::to_string(n) + " tokens");
  }
  if (!spec.token_types.empty() && spec.token_types.size() != n) {
    return InvalidArgument("the tokenizer has " + std::to_string(spec.token_types.size()) + " token types for " +
                           std::to_string(n) + " tokens");
  }
  TANDEM_RETURN_IF_ERROR(check_id("BOS", spec.bos, vocab_size));
  TANDEM_RETURN_IF_ERROR(check_id("EOS", spec.eos, vocab_size));
  TANDEM_RETURN_IF_ERROR(check_id("UNK", spec.unk, vocab_size));
  TANDEM_RETURN_IF_ERROR(check_id("PAD", spec.pad, vocab_size));
  if (spec.add_bos && spec.bos < 0) return InvalidArgument("the tokenizer adds BOS but names no BOS token");
  if (spec.add_eos && spec.eos < 0) return InvalidArgument("the tokenizer adds EOS but names no EOS token");

  Tokenizer t;
  t.byte_level_ = !llama;
  t.space_ = llama ? kSpmSpace : " ";
  t.pieces_ = spec.tokens;
  t.scores_ = spec.scores;
  t.scores_.resize(n, 0.0f);
  t.types_.assign(n, kTokenNormal);
  for (size_t i = 0; i < n; ++i) {
    if (t.pieces_[i].empty()) return InvalidArgument("token " + std::to_string(i) + " is empty");
    if (!std::isfinite(t.scores_[i])) return InvalidArgument("token " + std::to_string(i) + " has a non-finite score");
    if (spec.token_types.empty()) continue;
    const int32_t type = spec.token_types[i];
    if (type < 0 || type > kTokenByte) {
      return InvalidArgument("token " + std::to_string(i) + " has type " + std::to_string(type) + ", outside 0..6");
    }
    if (type != 0) t.types_[i] = static_cast<uint8_t>(type);
  }
  if (spec.token_types.empty()) {
    // No types given (a loader that found none): what the ids and pieces
    // imply, so control tokens stay out of text and byte fallback works.
    for (size_t i = 0; i < n; ++i) {
      if (llama && tokenizer_internal::byte_piece_value(t.pieces_[i]) >= 0) t.types_[i] = kTokenByte;
    }
    if (spec.unk >= 0 && static_cast<size_t>(spec.unk) < n) t.types_[spec.unk] = kTokenUnknown;
    for (int32_t id : {spec.bos, spec.eos}) {
      if (id >= 0 && static_cast<size_t>(id) < n) t.types_[id] = kTokenControl;
    }
  }
  for (int id = static_cast<int>(n); id < vocab_size; ++id) {
    t.pieces_.push_back("[PAD" + std::to_string(id) + "]");
    t.scores_.push_back(0.0f);
    t.types_.push_back(kTokenUnused);
  }
  t.bos_ = spec.bos;
  t.eos_ = spec.eos;
  t.unk_ = spec.unk;
  t.add_bos_ = spec.add_bos;
  t.add_eos_ = spec.add_eos;
  TANDEM_RETURN_IF_ERROR(t.index(&spec));
  return t;
}

}  // namespace tandem
