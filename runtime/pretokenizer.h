// The pre-tokenizers of byte-level BPE vocabularies: each splits text into
// the words BPE then merges within, exactly as its model's regex would
// (leftmost match, alternatives tried in order, backtracking included), but
// as a hand-written scanner over code points: std::regex has no \p classes
// and is slow. Patterns, as the models' tokenizer.json carry them:
//   kGpt2   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   kLlama3 (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//            ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   kQwen2  as kLlama3 with \p{N} (one digit per word) for \p{N}{1,3}
// Classes come from unicode_class.h. A byte that is not valid UTF-8 counts as
// punctuation (none of L, N, \s): the regexes never see one, and this keeps
// every byte inside some word, so arbitrary bytes still round-trip.
#pragma once

#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace tandem {

enum class PreTokenizer { kGpt2, kLlama3, kQwen2 };

// The pre-tokenizer a GGUF "tokenizer.ggml.pre" value (TokenizerSpec::pre)
// names: "gpt2", "default" and "" -> kGpt2; "llama-bpe", "llama3" -> kLlama3;
// "qwen2" -> kQwen2. Unimplemented naming any other.
Result<PreTokenizer> pretokenizer_from_name(std::string_view name);

// The words of `text` in order; their concatenation is `text`.
std::vector<std::string_view> pretokenize(PreTokenizer kind, std::string_view text);

}  // namespace tandem
