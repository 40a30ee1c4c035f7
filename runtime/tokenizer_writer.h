// Writes a synthetic llama2.c-format tokenizer (what Tokenizer::load_llama2c
// reads) of any vocabulary size, so that a synthetic checkpoint (`tandem model
// synth`) can be run by `tandem generate` and `tandem launch`, which need a
// tokenizer holding exactly the model's vocabulary.
//
// The vocabulary, deterministic for a given size:
//  - ids 0..2: "<unk>", "\n<s>\n", "\n</s>\n", as llama2.c's exported tokenizer;
//  - ids 3..258: the byte tokens "<0x00>".."<0xFF>", so any bytes encode;
//  - then the printable ASCII characters ' '..'~' (a plain space first, as
//    llama2.c's export writes SentencePiece's U+2581);
//  - then " a".." z", " aa".." zz", " aaa".. (a space and lowercase letters)
//    until the size is reached, scored so that shorter pieces merge first.
//    Each one's prefix is an earlier piece, so BPE merges can reach all.
#pragma once

#include <span>
#include <string>

#include "runtime/status.h"

namespace tandem {

// The control and byte tokens (ids 0..258) plus the " " piece (id 259): the
// smallest vocabulary in which every text round-trips. With bytes alone the
// SentencePiece dummy space encode() prepends would be the byte token <0x20>,
// which decode_piece() (as llama2.c's decoder) does not drop after BOS.
inline constexpr int kMinSyntheticVocab = 260;
// The first id after the byte tokens: where the pieces start.
inline constexpr int kFirstSyntheticPiece = 259;

// A llama2.c tokenizer file's bytes for these pieces and scores (id i is
// pieces[i]): the longest piece's length, then each token's score, length and
// bytes. The sizes must match (a programmer bug otherwise).
std::string llama2c_tokenizer_bytes(std::span<const std::string> pieces, std::span<const float> scores);

// The file's bytes. InvalidArgument for a size below kMinSyntheticVocab or
// above kMaxVocab (llama_weights.h).
Result<std::string> synthetic_llama2c_tokenizer(int vocab_size);

// The same, written to a temporary file and renamed, so `path` is either its
// previous content or complete.
Status write_synthetic_llama2c_tokenizer(int vocab_size, const std::string& path);

}  // namespace tandem
