#include "runtime/generator.h"

#include <chrono>
#include <vector>

namespace tandem {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Result<GenerateStats> generate(LlamaModel& model, const Tokenizer& tokenizer,
                               const GenerateRequest& request, const TextSink& on_text) {
  TANDEM_RETURN_IF_ERROR(validate(request.sampler));
  if (tokenizer.vocab_size() != model.config().vocab_size)
    return InvalidArgument("tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                           " tokens but the model's vocabulary is " +
                           std::to_string(model.config().vocab_size));
  if (request.steps < 1 || request.steps > model.context())
    return InvalidArgument("steps=" + std::to_string(request.steps) + " is outside [1, " +
                           std::to_string(model.context()) + "], the model's context");

  const std::vector<int> prompt = tokenizer.encode(request.prompt, /*add_bos=*/true, /*add_eos=*/false);
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n > request.steps)
    return InvalidArgument("the prompt is " + std::to_string(n) + " tokens (with BOS), more than steps=" +
                           std::to_string(request.steps));

  GenerateStats stats;
  stats.prompt_tokens = n;
  std::vector<float> logits(model.config().vocab_size);
  Sampler sampler(static_cast<int>(model.config().vocab_size), request.sampler);

  // Greedy decoding takes the argmax on the model's backend: 4 bytes per
  // token come back instead of the vocabulary's logits.
  const bool greedy = request.sampler.temperature == 0.0f || request.sampler.top_k == 1;
  int greedy_next = 0;
  auto step = [&](std::span<const int> tokens, int64_t pos) -> Status {
    if (!greedy) return model.forward(tokens, pos, logits);
    TANDEM_ASSIGN_OR_RETURN(greedy_next, model.forward_argmax(tokens, pos));
    return Status::Ok();
  };
  auto start = std::chrono::steady_clock::now();
  TANDEM_RETURN_IF_ERROR(step(prompt, 0));
  stats.prefill_seconds = seconds_since(start);

  if (request.echo_prompt) {
    for (int64_t i = 1; i < n; ++i) {
      if (!on_text(tokenizer.decode_piece(prompt[i - 1], prompt[i]))) {
        stats.stop_reason = "cancelled";
        return stats;
      }
    }
  }

  start = std::chrono::steady_clock::now();
  int token = prompt.back();
  const int64_t to_generate = request.steps - n + 1;
  stats.stop_reason = "steps";
  for (int64_t i = 0; i < to_generate; ++i) {
    const int next = greedy ? greedy_next : sampler.sample(logits.data());
    if (next == Tokenizer::kBos || next == Tokenizer::kEos) {
      stats.stop_reason = "eos";
      break;
    }
    ++stats.generated_tokens;
    if (!on_text(tokenizer.decode_piece(token, next))) {
      stats.stop_reason = "cancelled";
      break;
    }
    token = next;
    if (i + 1 < to_generate) {
      TANDEM_RETURN_IF_ERROR(step(std::span<const int>(&token, 1), n + i));
    }
  }
  stats.decode_seconds = seconds_since(start);
  return stats;
}

}  // namespace tandem
