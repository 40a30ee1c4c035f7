// A blocking call into the serving engine for callers that own a thread per
// request (a gRPC Generate handler): the request's events are queued by the
// engine's thread and delivered to the caller's sink on the caller's thread,
// so a slow client never stalls the batch; a cancelled call or a sink that
// returns false cancels the request in the engine.
#pragma once

#include <atomic>
#include <chrono>

#include "runtime/generator.h"
#include "runtime/serving/engine.h"
#include "runtime/tokenizer.h"

namespace tandem::launcher {

// Runs `request` through `engine` with generate()'s meaning of its fields
// (prompt text encoded with the tokenizer's BOS rule, or prompt_tokens as
// given; max_new_tokens, or llama2.c's `steps` when it is -1; stop strings;
// the sampler). The prompt's text is not echoed. The stats carry the token
// counts and stop_reason ("steps", "eos", "stop", "cancelled"); the timings
// are the call's own. `cancelled` is polled every `poll` until the request
// ends. Errors: the engine's refusal (submit) or failure (kError).
Result<GenerateStats> call_engine(serving::Engine& engine, const Tokenizer& tokenizer, const GenerateRequest& request,
                                  const PieceSink& on_piece, const std::atomic<bool>& cancelled,
                                  std::chrono::milliseconds poll = std::chrono::milliseconds(50));

}  // namespace tandem::launcher
