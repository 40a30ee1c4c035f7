// Training data: a text turned into token ids once (a character-level
// vocabulary, or any llama2.c tokenizer the engine reads), split into train
// and validation parts as nanoGPT's prepare.py does (the first 90% of the
// text trains), and a deterministic batch sampler.
//
// Character-level ids follow llama2.c's tokenizer conventions so a trained
// model exports with a tokenizer.bin that `tandem generate` reads: ids 0..2
// are "<unk>", BOS, EOS (never in the data), then one id per distinct byte of
// the text in byte order (tinyshakespeare: 65 characters, vocabulary 68).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace tandem::train {

inline constexpr int kFirstCharId = 3;

struct TokenCorpus {
  std::vector<int> train;
  std::vector<int> val;
  int vocab_size = 0;
  std::string chars;  // character-level: the byte of id kFirstCharId + i; empty otherwise
  std::string describe() const;  // "1,003,854 train / 111,540 val tokens, vocabulary 68 (characters)"
};

// NotFound / InvalidArgument naming the file: unreadable, empty, or too short
// for a validation part of at least one block (the caller checks lengths
// against its block size with check_corpus()).
Result<TokenCorpus> load_char_corpus(const std::string& text_path, double train_fraction = 0.9);
// The text encoded with a llama2.c tokenizer (tokenizer.h), without BOS,
// in lines so encoding stays linear in the text's length. The text is split
// at the same character as load_char_corpus (moved back to a UTF-8 character
// boundary), then each line, its '\n' included, is Tokenizer::encode(line,
// false, false): every line starts with SentencePiece's dummy-prefix space,
// as SentencePiece's trainer treats a line as a sentence. The vocabulary is
// the number of token records in the file (it stores no size). Errors name
// the tokenizer: unreadable, not a tokenizer file, or unable to spell a line
// (a vocabulary without byte tokens would turn it into <unk>).
Result<TokenCorpus> load_tokenized_corpus(const std::string& text_path, const std::string& tokenizer_path,
                                          double train_fraction = 0.9);
// InvalidArgument when a part is shorter than seq_len + 1 tokens or an id is
// outside [0, vocab_size) of a model with `vocab_size`.
Status check_corpus(const TokenCorpus& corpus, int64_t seq_len, int64_t vocab_size);

// The character vocabulary as a llama2.c tokenizer file (tokenizer.h reads it):
// ids 0..2 as llama2.c's, then each character as its own piece: an ASCII byte
// as itself, any other byte as its "<0xNN>" byte token, so UTF-8 text encodes
// byte by byte; all scores 0 (no piece is two others joined: nothing merges).
// Tokenizer::encode(text) gives the corpus's ids behind one extra id, the
// dummy-prefix space (<unk> if the text had no space), which decode drops
// after BOS. `chars`: distinct bytes in increasing order (TokenCorpus::chars).
Result<std::string> char_tokenizer_bytes(const std::string& chars);
Status write_char_tokenizer(const std::string& chars, const std::string& path);

// Which windows a step trains on. The global batch of a step is
// dp * accum * micro_batch windows numbered j = 0.. ; window j of step s
// starts at a position drawn from (seed, s, j) alone, uniform in
// [0, tokens - seq_len - 1]; its inputs are tokens[p, p + seq_len) and its
// targets tokens[p + 1, p + seq_len + 1). Rank r's micro-step m trains
// windows j = (r * accum + m) * micro_batch + i, i < micro_batch: so any
// dp x accum split of one global batch trains the same windows, and resuming
// at step s needs nothing but s.
struct BatchLayout {
  int64_t seq_len = 0;
  int64_t micro_batch = 0;  // sequences per forward_backward
  int64_t accum = 1;        // micro-steps per optimizer step
  int dp = 1;
};
// inputs, targets: [micro_batch * seq_len].
void sample_batch(std::span<const int> tokens, uint64_t seed, int64_t step, const BatchLayout& layout, int rank,
                  int64_t micro, std::span<int> inputs, std::span<int> targets);
// Evaluation windows: batch `index` of a fixed set (the same at every
// evaluation), micro_batch windows each; ranks split the indices. Window
// w = index * micro_batch + i is drawn from (seed, w) in a stream apart from
// training's, so batches 0..k-1 cover the same windows whatever micro_batch.
// Both samplers abort on a layout that does not fit (programmer bugs: the
// spans' sizes, rank/micro out of range, tokens not checked by check_corpus).
void eval_batch(std::span<const int> tokens, uint64_t seed, int64_t index, const BatchLayout& layout,
                std::span<int> inputs, std::span<int> targets);

}  // namespace tandem::train
