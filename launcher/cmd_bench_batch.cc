// `tandem bench batch`: decode throughput of continuous batching on this
// machine: B sequences decoding one token each per forward_batch step, for
// several B. A batch-1 decode reads every weight for one token (memory
// bound); a batch of B reads them once for B tokens, so tokens/s should grow
// with B towards the matmul rate of a prefill, until attention (which grows
// with B x context) and the per-token work take over. --model runs a
// checkpoint as `job: serve` loads it (the assembler's f32 weights) instead
// of synthetic ones held in backend memory.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>
#include <vector>

#include "launcher/bench_stats.h"
#include "launcher/commands.h"
#include "runtime/deadline.h"
#include "runtime/llama_model.h"
#include "runtime/loaded_model.h"
#include "runtime/model_assembly.h"
#include "runtime/paged_kv.h"
#include "runtime/synthetic.h"

namespace tandem::cli {
namespace {

struct BatchFlags {
  std::string shape = "stories110M";
  std::string model;
  std::string batches = "1,4,16,64";
  int64_t prompt_tokens = 16;
  int64_t decode_tokens = 16;
  int repeat = 3;
  int threads = 0;
  uint64_t seed = 1;
  std::string kv_dtype = "f32";
  std::string f32_layout = "auto";
};

Status run_bench_batch(const BatchFlags& f) {
  if (f.prompt_tokens < 1 || f.decode_tokens < 1 || f.repeat < 1)
    return InvalidArgument("--prompt-tokens, --decode-tokens and --repeat must be at least 1");
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> batches, parse_count_list("--batches", f.batches, 1, 1024));
  std::optional<ModelSource> source;
  std::optional<LlamaConfig> config;
  std::string description;
  if (!f.model.empty()) {
    TANDEM_ASSIGN_OR_RETURN(const ModelFiles files, resolve_model_files(f.model, "", TokenizerUse::kUnused));
    TANDEM_ASSIGN_OR_RETURN(source, open_model_source(files));
    config = source->config;
    description = files.checkpoint;
  } else {
    config = synthetic_shape(f.shape);
    if (!config) return InvalidArgument("unknown --shape " + f.shape + " (known: " + std::string(synthetic_shape_names()) + ")");
    description = f.shape + " (synthetic)";
  }
  const int64_t positions = f.prompt_tokens + f.decode_tokens;
  if (positions > context_limit(*config))
    return InvalidArgument("--prompt-tokens + --decode-tokens exceed the context (" +
                           std::to_string(context_limit(*config)) + " positions)");
  TANDEM_ASSIGN_OR_RETURN(auto backend, make_backend(BackendOptions{BackendKind::kCpu, f.threads, 0}));
  LlamaWeights w;
  if (source) {
    AssemblyReport report;
    AssemblyOptions assembly = assembly_options_for(BackendKind::kCpu);
    if (f.f32_layout != "auto") assembly.f32_panels = f.f32_layout == "panels";
    TANDEM_ASSIGN_OR_RETURN(w, assemble_weights(*source, whole_model_part(*config), assembly, &report));
    description += fmt::format(", {:.2f} MB mapped in place, {:.2f} MB copied{}", report.mapped_bytes / 1e6,
                               report.converted_bytes / 1e6, assembly.f32_panels ? " into f32 panels" : "");
  } else {
    TANDEM_ASSIGN_OR_RETURN(w, make_synthetic_weights_on(*backend, *config, f.seed, DType::kF32));
  }
  const int64_t most = *std::max_element(batches.begin(), batches.end());
  LlamaModelOptions options;
  options.max_batch = std::max(most, f.prompt_tokens);
  options.kv_block_size = 16;
  options.kv_blocks = most * kv_blocks_for(positions, options.kv_block_size);
  options.kv_dtype = f.kv_dtype == "f16" ? DType::kF16 : DType::kF32;
  options.contiguous_kv = false;
  TANDEM_ASSIGN_OR_RETURN(auto model, LlamaModel::create(*backend, std::move(w), options));

  std::mt19937 rng(static_cast<uint32_t>(f.seed));
  std::uniform_int_distribution<int> pick(3, static_cast<int>(config->vocab_size) - 1);
  fmt::print("model        {}, {:.2f} GB of weights, {}\n", description,
             model->weight_bytes_per_token() / 1e9, backend->name());
  fmt::print("decode       {} tokens per sequence after a {}-token prompt, {} KV cache; median of {}\n",
             f.decode_tokens, f.prompt_tokens, f.kv_dtype, f.repeat);
  double base = 0;
  for (const int64_t batch : batches) {
    BlockAllocator allocator(options.kv_blocks);
    std::vector<std::vector<int32_t>> tables(batch);
    std::vector<std::vector<int>> prompts(batch, std::vector<int>(f.prompt_tokens));
    for (int64_t s = 0; s < batch; ++s) {
      TANDEM_RETURN_IF_ERROR(allocator.allocate(kv_blocks_for(positions, options.kv_block_size), tables[s]));
      for (int& t : prompts[s]) t = pick(rng);
      const SequenceStep prefill{prompts[s], 0, tables[s], false};
      TANDEM_RETURN_IF_ERROR(model->forward_batch(std::span(&prefill, 1), {}));
    }
    std::vector<int> next(batch);
    for (int& t : next) t = pick(rng);
    std::vector<int32_t> chosen(batch);
    std::vector<SequenceStep> step(batch);
    std::vector<double> rates;
    for (int r = 0; r < f.repeat + 1; ++r) {  // round 0 warms up
      const auto start = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < f.decode_tokens; ++i) {
        for (int64_t s = 0; s < batch; ++s)
          step[s] = SequenceStep{std::span<const int>(&next[s], 1), f.prompt_tokens + i, tables[s], true};
        TANDEM_RETURN_IF_ERROR(model->forward_batch_argmax(step, chosen));
        for (int64_t s = 0; s < batch; ++s) next[s] = chosen[s];
      }
      const double seconds = seconds_since(start);
      if (r > 0) rates.push_back(static_cast<double>(batch * f.decode_tokens) / seconds);
    }
    const double rate = median(rates);
    if (base == 0) base = rate;
    fmt::print("batch {:>4}   {:8.1f} tok/s  ({:5.2f}x the first batch size; {:.1f} ms a step)\n", batch, rate,
               rate / base, 1e3 * batch / rate);
  }
  return Status::Ok();
}

}  // namespace

void add_bench_batch_command(CLI::App& bench) {
  auto flags = std::make_shared<BatchFlags>();
  CLI::App* cmd = bench.add_subcommand("batch", "Continuous-batching decode tokens/s vs batch size (cpu)");
  cmd->add_option("--shape", flags->shape, "Synthetic shape: " + std::string(synthetic_shape_names()))
      ->capture_default_str();
  cmd->add_option("--model", flags->model, "Model directory or checkpoint (default: a synthetic --shape)");
  cmd->add_option("--batches", flags->batches, "Comma-separated batch sizes (sequences per step)")->capture_default_str();
  cmd->add_option("--prompt-tokens", flags->prompt_tokens, "Each sequence's prompt")->capture_default_str();
  cmd->add_option("--decode-tokens", flags->decode_tokens, "Decode steps timed per round")->capture_default_str();
  cmd->add_option("--repeat", flags->repeat, "Timed rounds (after one warm-up)")->capture_default_str();
  cmd->add_option("--threads", flags->threads, "CPU threads, 0 = all")->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Seed of the synthetic weights and tokens")->capture_default_str();
  cmd->add_option("--kv-dtype", flags->kv_dtype, "What the paged KV pool stores (engine.kv_dtype)")
      ->check(CLI::IsMember({"f32", "f16"}))
      ->capture_default_str();
  cmd->add_option("--f32-layout", flags->f32_layout,
                  "How a --model's f32 matrices are stored: panels (what AVX-512 CPUs load), rows, or auto")
      ->check(CLI::IsMember({"auto", "panels", "rows"}))
      ->capture_default_str();
  cmd->callback([flags] {
    Status s = run_bench_batch(*flags);
    set_exit_code(s.ok() ? 0 : report_error(s));
  });
}

}  // namespace tandem::cli
