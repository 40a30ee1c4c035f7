#include "runtime/generator.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <utility>
#include <vector>

#include "runtime/atomic_file.h"
#include "runtime/deadline.h"
#include "runtime/stop_filter.h"

namespace tandem {
std::string describe(const GenerateStats& stats, uint64_t seed) {
  const double rate = stats.decode_seconds > 0 ? stats.generated_tokens / stats.decode_seconds : 0;
  // A lone BOS's forward is one decode step, not a prefill rate worth a figure.
  char prefill[48] = "";
  if (stats.prompt_tokens > 1 && stats.prefill_seconds > 0) {
    std::snprintf(prefill, sizeof prefill, " (%.1f tok/s)", stats.prompt_tokens / stats.prefill_seconds);
  }
  char text[256];
  std::snprintf(text, sizeof text, "%lld prompt tokens%s, %lld generated (%s), %.1f tok/s decode, seed %llu",
                static_cast<long long>(stats.prompt_tokens), prefill, static_cast<long long>(stats.generated_tokens),
                stats.stop_reason.c_str(), rate, static_cast<unsigned long long>(seed));
  return text;
}

Status save_logits(const std::string& path, std::span<const float> logits) {
  static_assert(std::endian::native == std::endian::little, "logits are saved little-endian");
  return write_file_atomically(
      path, std::string_view(reinterpret_cast<const char*>(logits.data()), logits.size_bytes()));
}

Result<GenerateStats> generate(LlamaModel& model, const Tokenizer& tokenizer,
                               const GenerateRequest& request, const TextSink& on_text) {
  if (tokenizer.vocab_size() != model.config().vocab_size)
    return InvalidArgument("tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                           " tokens but the model's vocabulary is " +
                           std::to_string(model.config().vocab_size));
  auto forward = [&model](std::span<const int> tokens, int64_t start_pos, std::span<float> logits) {
    return model.forward(tokens, start_pos, logits);
  };
  auto argmax = [&model](std::span<const int> tokens, int64_t start_pos) {
    return model.forward_argmax(tokens, start_pos);
  };
  return generate(forward, model.context(), tokenizer, request,
                  [&on_text](int, std::string_view text) { return text.empty() || on_text(text); }, argmax);
}

Result<GenerateStats> generate(const ForwardFn& forward, int64_t context, const Tokenizer& tokenizer,
                               const GenerateRequest& request, const PieceSink& on_piece,
                               const ArgmaxForwardFn& argmax, const TopKForwardFn& top_k) {
  TANDEM_RETURN_IF_ERROR(validate(request.sampler));
  const bool counted_in_steps = request.max_new_tokens < 0;
  if (counted_in_steps && (request.steps < 1 || request.steps > context))
    return InvalidArgument("steps=" + std::to_string(request.steps) + " is outside [1, " +
                           std::to_string(context) + "], the model's context");

  const std::vector<int> prompt = request.prompt_tokens.empty()
                                      ? tokenizer.encode(request.prompt, tokenizer.adds_bos(), /*add_eos=*/false)
                                      : request.prompt_tokens;
  const int64_t n = static_cast<int64_t>(prompt.size());
  const int64_t limit = counted_in_steps ? request.steps : context;
  if (n > limit)
    return InvalidArgument("the prompt is " + std::to_string(n) + " tokens" +
                           (request.prompt_tokens.empty() ? " (with BOS)" : "") + ", more than " +
                           (counted_in_steps ? "steps=" : "the context of ") + std::to_string(limit));

  GenerateStats stats;
  stats.prompt_tokens = n;
  std::vector<float> logits(tokenizer.vocab_size());
  Sampler sampler(tokenizer.vocab_size(), request.sampler);
  StopFilter filter(request.stop);

  // Greedy decoding takes the argmax on the model's backend where it can: 4
  // bytes per token come back instead of the vocabulary's logits.
  // Top-k sampling likewise needs only the k best (from each shard of a
  // vocab-parallel model).
  const SamplerConfig& sc = request.sampler;
  const bool whole_logits = static_cast<bool>(request.on_prompt_logits);
  const bool greedy = !whole_logits && argmax && (sc.temperature == 0.0f || sc.top_k == 1);
  const bool by_top_k = !whole_logits && !greedy && top_k && sc.top_k > 0 && sc.top_k < tokenizer.vocab_size() &&
                        sc.top_k <= LlamaModel::kMaxTopK;
  int greedy_next = 0;
  std::vector<TokenLogit> best;
  auto step = [&](std::span<const int> tokens, int64_t pos) -> Status {
    if (by_top_k) return top_k(tokens, pos, sc.top_k, best);
    if (!greedy) return forward(tokens, pos, logits);
    TANDEM_ASSIGN_OR_RETURN(greedy_next, argmax(tokens, pos));
    return Status::Ok();
  };
  auto start = std::chrono::steady_clock::now();
  TANDEM_RETURN_IF_ERROR(step(prompt, 0));
  stats.prefill_seconds = seconds_since(start);
  if (whole_logits) TANDEM_RETURN_IF_ERROR(request.on_prompt_logits(logits));

  if (request.echo_prompt) {
    // Everything after the leading BOS; all of it for a tokenizer that adds
    // none (Qwen2, GPT-2).
    const int64_t first = n > 0 && prompt[0] == tokenizer.bos_id() ? 1 : 0;
    for (int64_t i = first; i < n; ++i) {
      if (!on_piece(prompt[i], tokenizer.decode_piece(i > 0 ? prompt[i - 1] : -1, prompt[i]))) {
        stats.stop_reason = "cancelled";
        return stats;
      }
    }
  }

  start = std::chrono::steady_clock::now();
  int token = prompt.back();
  // Generating k tokens forwards positions up to n + k - 2 < context.
  const int64_t to_generate =
      counted_in_steps ? request.steps - n + 1 : std::min(request.max_new_tokens, context - n + 1);
  stats.stop_reason = "steps";
  for (int64_t i = 0; i < to_generate; ++i) {
    const int next = greedy     ? greedy_next
                     : by_top_k ? sampler.sample(std::span<const TokenLogit>(best))
                                : sampler.sample(logits.data());
    if (next == tokenizer.bos_id() || tokenizer.is_end_of_generation(next)) {
      stats.stop_reason = "eos";
      break;
    }
    ++stats.generated_tokens;
    if (!on_piece(next, filter.push(tokenizer.decode_piece(token, next)))) {
      stats.stop_reason = "cancelled";
      break;
    }
    if (filter.stopped()) {
      stats.stop_reason = "stop";
      break;
    }
    token = next;
    if (i + 1 < to_generate) {
      TANDEM_RETURN_IF_ERROR(step(std::span<const int>(&token, 1), n + i));
    }
  }
  // What was held back at the end was no stop string after all.
  if (stats.stop_reason != "cancelled" && filter.holding() && !on_piece(-1, filter.flush())) {
    stats.stop_reason = "cancelled";
  }
  stats.decode_seconds = seconds_since(start);
  return stats;
}

}  // namespace tandem
