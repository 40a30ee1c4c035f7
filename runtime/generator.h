// The generation loop: tokenize, prefill the prompt in one batched forward,
// then sample and decode one token at a time, streaming text as it comes.
//
// Counting follows llama2.c's `run`: `steps` is the number of tokens printed
// after BOS (prompt tokens included), so the forwards cover positions
// [0, steps) and steps must fit the model's context. Generation stops early at
// BOS, EOS or an end-of-turn token (Tokenizer::is_end_of_generation; the
// stories models delimit texts with BOS), at a stop string,
// after max_new_tokens, or when the callback returns false (a cancelled
// client).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "runtime/llama_model.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"

namespace tandem {

struct GenerateRequest {
  std::string prompt;
  // Token ids to start from instead of `prompt` (used as given: no BOS added).
  std::vector<int> prompt_tokens;
  int64_t steps = 256;
  // >= 0: generate at most this many tokens after the prompt (still bounded
  // by the context); -1: llama2.c's `steps` counting above.
  int64_t max_new_tokens = -1;
  // Generation ends when the text contains one of these; the stop string and
  // what follows it are not streamed.
  std::vector<std::string> stop;
  SamplerConfig sampler;
  bool echo_prompt = true;  // stream the prompt's text before the continuation
  // Called once, before anything is sampled, with the logits of the prompt's
  // last position (the whole vocabulary): how `tandem generate --dump-logits`
  // and a job's generate.dump_logits save them, to compare one run's with
  // another's (a tp=2 job's with one process's). While set, every forward
  // returns the whole vocabulary's logits (no greedy or top-k shortcut), so
  // the tokens drawn are the ones those logits give.
  std::function<Status(std::span<const float> logits)> on_prompt_logits;
};

struct GenerateStats {
  int64_t prompt_tokens = 0;     // including BOS
  int64_t generated_tokens = 0;  // sampled tokens streamed
  double prefill_seconds = 0;    // the prompt's forward
  double decode_seconds = 0;     // sampling and one-token forwards after it
  std::string stop_reason;       // "steps", "eos", "stop", "cancelled"
};

// "128 prompt tokens (812.3 tok/s), 64 generated (steps), 40.1 tok/s decode,
// seed 7": the line `tandem generate` and a launched job print after the text.
// The prompt's rate (its forward, prefill_seconds) is left out for a prompt of
// one token (BOS alone) or no measured time.
std::string describe(const GenerateStats& stats, uint64_t seed);

// Returns false to stop generating.
using TextSink = std::function<bool(std::string_view text)>;
// The same with the token the text belongs to (-1 for held-back text that a
// stop string did not claim, streamed at the end). Text may be empty while a
// possible stop string is held back.
using PieceSink = std::function<bool(int token, std::string_view text)>;
// How generate() runs a forward: the model itself, or a wrapper that first
// tells the job's other ranks to run the same one.
using ForwardFn = std::function<Status(std::span<const int> tokens, int64_t start_pos, std::span<float> logits)>;
// A forward that returns only the greedy choice, taken where the logits are
// (the GPU): used for greedy requests when given.
using ArgmaxForwardFn = std::function<Result<int>(std::span<const int> tokens, int64_t start_pos)>;
// A forward that returns only the k best tokens with their logits
// (LlamaModel::forward_top_k): used for top-k sampling (0 < top_k < vocab,
// top_k <= LlamaModel::kMaxTopK) when given; the tokens drawn are the same as
// from the whole vocabulary's logits.
using TopKForwardFn = std::function<Status(std::span<const int> tokens, int64_t start_pos, int k,
                                           std::vector<TokenLogit>& best)>;

// Writes `logits` to `path` as raw little-endian f32 (a temporary file renamed).
Status save_logits(const std::string& path, std::span<const float> logits);

Result<GenerateStats> generate(LlamaModel& model, const Tokenizer& tokenizer,
                               const GenerateRequest& request, const TextSink& on_text);
// `context` bounds the positions (the model's KV cache length).
Result<GenerateStats> generate(const ForwardFn& forward, int64_t context, const Tokenizer& tokenizer,
                               const GenerateRequest& request, const PieceSink& on_piece,
                               const ArgmaxForwardFn& argmax = {}, const TopKForwardFn& top_k = {});

}  // namespace tandem
