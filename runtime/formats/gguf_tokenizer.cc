// The tokenizer a GGUF file embeds (tokenizer.ggml.*), as llama.cpp's
// converter writes it, into a TokenizerSpec for runtime/tokenizer.h.
#include "runtime/formats/gguf_model.h"
#include "runtime/formats/gguf_model_keys.h"

namespace tandem {
namespace {

// Pre-tokenizers of Llama 3 style BPE vocabularies, for which llama.cpp
// adds BOS unless the file says otherwise; other gpt2-model vocabularies
// (qwen2, ...) add nothing by default.
bool bpe_adds_bos(std::string_view pre) {
  return pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3";
}

// A special token id: the file's value when it names a token, otherwise
// `fallback`. llama.cpp warns about and ignores ids past the vocabulary
// (some converted files carry them), so they are dropped here too.
Result<int32_t> special_id(const gguf::File& f, const char* name, int32_t fallback, size_t n_tokens) {
  const std::string key = std::string("tokenizer.ggml.") + name;
  TANDEM_ASSIGN_OR_RETURN(const int64_t id, gguf_optional<int64_t>(f, key, fallback, &gguf::File::get_int));
  if (id < 0 || id >= static_cast<int64_t>(n_tokens)) return fallback < static_cast<int64_t>(n_tokens) ? fallback : -1;
  return static_cast<int32_t>(id);
}

}  // namespace

Status read_gguf_tokenizer(const gguf::File& f, ModelSource& source) {
  if (f.find("tokenizer.ggml.model") == nullptr) {
    source.has_tokenizer = false;
    return Status::Ok();
  }
  TokenizerSpec t;
  TANDEM_ASSIGN_OR_RETURN(t.model, f.get_string("tokenizer.ggml.model"));
  TANDEM_ASSIGN_OR_RETURN(t.pre, gguf_optional<std::string>(f, "tokenizer.ggml.pre", "", &gguf::File::get_string));
  TANDEM_ASSIGN_OR_RETURN(t.tokens, f.get_string_array("tokenizer.ggml.tokens"));
  const size_t n = t.tokens.size();
  if (n == 0) return DataLoss(f.source + ": tokenizer.ggml.tokens is empty");
  TANDEM_ASSIGN_OR_RETURN(t.scores, gguf_optional<std::vector<float>>(f, "tokenizer.ggml.scores", {},
                                                                        &gguf::File::get_f32_array));
  TANDEM_ASSIGN_OR_RETURN(t.token_types, gguf_optional<std::vector<int32_t>>(f, "tokenizer.ggml.token_type", {},
                                                                             &gguf::File::get_i32_array));
  TANDEM_ASSIGN_OR_RETURN(t.merges, gguf_optional<std::vector<std::string>>(f, "tokenizer.ggml.merges", {},
                                                                            &gguf::File::get_string_array));
  const auto same_length = [&](const char* key, size_t got) -> Status {
    if (got != 0 && got != n)
      return DataLoss(f.source + ": " + key + " has " + std::to_string(got) + " entries for " +
                      std::to_string(n) + " tokens");
    return Status::Ok();
  };
  TANDEM_RETURN_IF_ERROR(same_length("tokenizer.ggml.scores", t.scores.size()));
  TANDEM_RETURN_IF_ERROR(same_length("tokenizer.ggml.token_type", t.token_types.size()));

  // llama.cpp's defaults: a SentencePiece ("llama") vocabulary has <unk> 0,
  // <s> 1, </s> 2 and adds BOS; the others name their ids.
  const bool spm = t.model == "llama";
  TANDEM_ASSIGN_OR_RETURN(t.bos, special_id(f, "bos_token_id", spm ? 1 : -1, n));
  TANDEM_ASSIGN_OR_RETURN(t.eos, special_id(f, "eos_token_id", spm ? 2 : -1, n));
  TANDEM_ASSIGN_OR_RETURN(t.unk, special_id(f, "unknown_token_id", spm ? 0 : -1, n));
  TANDEM_ASSIGN_OR_RETURN(t.pad, special_id(f, "padding_token_id", -1, n));
  TANDEM_ASSIGN_OR_RETURN(t.add_bos, gguf_optional(f, "tokenizer.ggml.add_bos_token", spm || bpe_adds_bos(t.pre),
                                                   &gguf::File::get_bool));
  TANDEM_ASSIGN_OR_RETURN(t.add_eos, gguf_optional(f, "tokenizer.ggml.add_eos_token", false, &gguf::File::get_bool));
  TANDEM_ASSIGN_OR_RETURN(t.chat_template,
                          gguf_optional<std::string>(f, "tokenizer.chat_template", "", &gguf::File::get_string));
  source.tokenizer = std::move(t);
  source.has_tokenizer = true;
  return Status::Ok();
}

}  // namespace tandem
