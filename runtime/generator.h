// The generation loop: tokenize, prefill the prompt in one batched forward,
// then sample and decode one token at a time, streaming text as it comes.
//
// Counting follows llama2.c's `run`: `steps` is the number of tokens printed
// after BOS (prompt tokens included), so the forwards cover positions
// [0, steps) and steps must fit the model's context. Generation stops early at
// BOS or EOS (the stories models delimit texts with BOS) or when the text
// callback returns false (a cancelled client).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "runtime/llama_model.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"

namespace tandem {

struct GenerateRequest {
  std::string prompt;
  int64_t steps = 256;
  SamplerConfig sampler;
  bool echo_prompt = true;  // stream the prompt's text before the continuation
};

struct GenerateStats {
  int64_t prompt_tokens = 0;     // including BOS
  int64_t generated_tokens = 0;  // sampled tokens streamed
  double prefill_seconds = 0;    // the prompt's forward
  double decode_seconds = 0;     // sampling and one-token forwards after it
  std::string stop_reason;       // "steps", "eos", "cancelled"
};

// Returns false to stop generating.
using TextSink = std::function<bool(std::string_view text)>;

Result<GenerateStats> generate(LlamaModel& model, const Tokenizer& tokenizer,
                               const GenerateRequest& request, const TextSink& on_text);

}  // namespace tandem
