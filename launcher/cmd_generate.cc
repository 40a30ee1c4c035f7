// `tandem generate`: stream a completion of a prompt from a model.
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "launcher/commands.h"
#include "runtime/generator.h"
#include "runtime/loaded_model.h"

namespace tandem::cli {
namespace {

struct GenerateFlags {
  std::string model = "models/stories260K";
  std::string tokenizer;
  std::string prompt;
  int64_t steps = 256;
  float temperature = 1.0f;
  float top_p = 0.9f;
  int top_k = 0;
  int64_t seed = -1;
  int threads = 0;
  std::string backend = "cpu";
  int device = 0;
  std::string dtype = "auto";
  std::string dump_logits;
};

Result<std::optional<DType>> parse_weight_dtype(const std::string& name) {
  if (name == "auto") return std::optional<DType>{};
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4K})
    if (name == dtype_name(d)) return std::optional<DType>{d};
  return InvalidArgument("--dtype " + name + ": unknown (known: auto, f32, f16, bf16, q8_0, q4_0, q4_k)");
}

int run_generate(const GenerateFlags& f) {
  GenerateRequest request;
  request.prompt = f.prompt;
  request.steps = f.steps;
  request.sampler = make_sampler_config(f.temperature, f.top_p, f.top_k, f.seed);
  if (Status s = validate(request.sampler); !s.ok()) return report_error(s);
  if (!f.dump_logits.empty()) {
    request.on_prompt_logits = [path = f.dump_logits](std::span<const float> logits) {
      return save_logits(path, logits);
    };
  }

  LoadOptions options;
  options.tokenizer = f.tokenizer;
  options.backend.threads = f.threads;
  options.backend.device = f.device;
  auto kind = parse_backend_kind(f.backend);
  if (!kind.ok()) return report_error(kind.status());
  options.backend.kind = *kind;
  auto dtype = parse_weight_dtype(f.dtype);
  if (!dtype.ok()) return report_error(dtype.status());
  options.weight_dtype = *dtype;
  auto loaded = load_model(f.model, options);
  if (!loaded.ok()) return report_error(loaded.status());
  for (const std::string& note : loaded->assembly.notes) std::fprintf(stderr, "tandem: %s\n", note.c_str());

  bool wrote = false;
  auto stats = generate(*loaded->model, loaded->tokenizer, request, [&wrote](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    wrote = true;
    return true;
  });
  // Ends the streamed line; a request refused before any text prints nothing.
  if (wrote || stats.ok()) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  if (!stats.ok()) return report_error(stats.status());
  std::fprintf(stderr, "tandem: %s, %s\n", describe(*stats, request.sampler.seed).c_str(),
               loaded->backend->name().c_str());
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt, streaming tokens");
  cmd->add_option("--model", flags->model, "Model: a GGUF file, a Hugging Face directory, a llama2.c checkpoint or a directory holding one")
      ->capture_default_str();
  cmd->add_option("--tokenizer", flags->tokenizer, "llama2.c tokenizer file (default: the model's own, or found beside a llama2.c checkpoint)");
  cmd->add_option("--prompt", flags->prompt, "Prompt text (default: empty, start from BOS)");
  cmd->add_option("--steps", flags->steps, "Tokens to print after BOS, prompt included (at most the context)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", flags->temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", flags->top_p, "Nucleus sampling threshold, 1 = off")->capture_default_str();
  cmd->add_option("--top-k", flags->top_k, "Sample among the k most likely, 0 = off")->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Sampling seed, >= 0 (default: from the clock, printed)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", flags->threads, "CPU threads, 0 = all")->capture_default_str();
  cmd->add_option("--backend", flags->backend, "cpu or cuda")->capture_default_str();
  cmd->add_option("--dtype", flags->dtype,
                  "Weights in memory: auto (the file's where the backend computes with it), f32, f16, bf16, q8_0, q4_0, q4_k")
      ->capture_default_str();
  cmd->add_option("--dump-logits", flags->dump_logits,
                  "Save the prompt's last logits (the whole vocabulary, raw little-endian f32) to FILE");
  cmd->add_option("--device", flags->device, "CUDA device ordinal")->capture_default_str();
  cmd->callback([flags] { set_exit_code(run_generate(*flags)); });
}

}  // namespace tandem::cli
