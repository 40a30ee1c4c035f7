// `tandem bench generate`: prefill and decode speed of one model on this
// machine, with the decode memory roofline measured in the same run.
#include <fmt/core.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <vector>

#include "launcher/commands.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/llama2c_loader.h"
#include "runtime/llama_model.h"
#include "runtime/model_files.h"
#include "runtime/memory_bandwidth.h"
#include "runtime/synthetic.h"

namespace tandem::cli {
namespace {

struct BenchFlags {
  std::string model;
  std::string shape = "stories110M";
  int64_t prompt_tokens = 128;
  int64_t decode_tokens = 64;
  int repeat = 3;
  int threads = 0;
  int bandwidth_mib = 256;
  uint64_t seed = 1;
};

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

double peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) * 1024.0;  // Linux reports KiB
}

Result<std::unique_ptr<LlamaModel>> build_model(const BenchFlags& f, Backend& backend,
                                                std::string& description) {
  LlamaModelOptions options;
  if (!f.model.empty()) {
    TANDEM_ASSIGN_OR_RETURN(ModelFiles files, resolve_model_files(f.model));
    TANDEM_ASSIGN_OR_RETURN(LlamaWeights w, load_llama2c(files.checkpoint));
    description = files.checkpoint;
    return LlamaModel::create(backend, std::move(w), options);
  }
  auto config = synthetic_shape(f.shape);
  if (!config)
    return InvalidArgument("unknown --shape " + f.shape + " (known: " +
                           std::string(synthetic_shape_names()) + ")");
  TANDEM_ASSIGN_OR_RETURN(LlamaWeights w, make_synthetic_weights(*config, f.seed));
  description = f.shape + " (synthetic, seed " + std::to_string(f.seed) + ")";
  return LlamaModel::create(backend, std::move(w), options);
}

Status run_bench(const BenchFlags& f) {
  if (f.prompt_tokens < 1 || f.decode_tokens < 1 || f.repeat < 1)
    return InvalidArgument("--prompt-tokens, --decode-tokens and --repeat must be at least 1");
  auto backend = std::make_unique<CpuBackend>(f.threads);
  std::string description;
  TANDEM_ASSIGN_OR_RETURN(auto model, build_model(f, *backend, description));
  const LlamaConfig& c = model->config();
  if (f.prompt_tokens + f.decode_tokens > model->context())
    return InvalidArgument(fmt::format("--prompt-tokens + --decode-tokens = {} exceeds the context of {}",
                                       f.prompt_tokens + f.decode_tokens, model->context()));

  std::mt19937 rng(static_cast<uint32_t>(f.seed));
  std::uniform_int_distribution<int> pick(3, static_cast<int>(c.vocab_size) - 1);
  std::vector<int> prompt(f.prompt_tokens);
  for (int& t : prompt) t = pick(rng);
  std::vector<float> logits(c.vocab_size);

  std::vector<double> prefill_rates, decode_rates;
  for (int r = 0; r < f.repeat + 1; ++r) {  // the first round warms caches and pages
    auto start = std::chrono::steady_clock::now();
    TANDEM_RETURN_IF_ERROR(model->forward(prompt, 0, logits));
    const double prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int token = prompt.back();
    start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < f.decode_tokens; ++i) {
      TANDEM_RETURN_IF_ERROR(model->forward(std::span<const int>(&token, 1), f.prompt_tokens + i, logits));
      token = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const double decode_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (r == 0) continue;
    prefill_rates.push_back(f.prompt_tokens / prefill_s);
    decode_rates.push_back(f.decode_tokens / decode_s);
  }
  const double peak = peak_rss_bytes();  // before the bandwidth probe's buffers exist

  TANDEM_ASSIGN_OR_RETURN(Bandwidth bw, measure_copy_bandwidth(backend->pool(),
                                                               static_cast<size_t>(f.bandwidth_mib) << 20, 5));
  // Decode reads every weight once per token plus the KV cache up to the
  // token's position (the mean position over the decoded tokens).
  const double mean_pos = f.prompt_tokens + (f.decode_tokens - 1) / 2.0;
  const double bytes_per_token = static_cast<double>(model->weight_bytes_per_token()) +
                                 mean_pos * static_cast<double>(model->kv_bytes_per_position());
  const double decode = median(decode_rates), roofline = bw.bytes_per_second / bytes_per_token;

  fmt::print("model        {}: {:.1f}M params, dim {} layers {} heads {}/{} vocab {}\n", description,
             c.parameter_count() / 1e6, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size);
  fmt::print("backend      {}\n", backend->name());
  fmt::print("memory bw    {:.2f} GB/s  (copy, read+write, 2 x {} MiB, {} threads, median of 5)\n",
             bw.bytes_per_second / 1e9, f.bandwidth_mib, bw.threads);
  fmt::print("prefill      {} tokens: {:.1f} tok/s  (median of {})\n", f.prompt_tokens,
             median(prefill_rates), f.repeat);
  fmt::print("decode       {} tokens: {:.2f} tok/s  (median of {})\n", f.decode_tokens, decode, f.repeat);
  fmt::print("roofline     {:.1f} MB/token -> {:.2f} tok/s max; reached {:.0f}%\n", bytes_per_token / 1e6,
             roofline, 100.0 * decode / roofline);
  fmt::print("peak rss     {:.1f} MB  (model {:.1f} MB allocated + weights)\n", peak / 1e6,
             model->allocated_bytes() / 1e6);
  return Status::Ok();
}

}  // namespace

void add_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks that print figures");
  bench->require_subcommand(1);
  auto flags = std::make_shared<BenchFlags>();
  CLI::App* cmd = bench->add_subcommand("generate", "Prefill and decode tokens/s against the memory roofline");
  cmd->add_option("--model", flags->model, "Model directory or checkpoint (default: a synthetic --shape)");
  cmd->add_option("--shape", flags->shape, "Synthetic shape: " + std::string(synthetic_shape_names()))
      ->capture_default_str();
  cmd->add_option("--prompt-tokens", flags->prompt_tokens, "Tokens in the prefill")->capture_default_str();
  cmd->add_option("--decode-tokens", flags->decode_tokens, "Tokens decoded one by one")->capture_default_str();
  cmd->add_option("--repeat", flags->repeat, "Timed rounds (after one warm-up)")->capture_default_str();
  cmd->add_option("--threads", flags->threads, "CPU threads, 0 = all")->capture_default_str();
  cmd->add_option("--bandwidth-mib", flags->bandwidth_mib, "Size of each bandwidth-probe buffer")
      ->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Seed of the synthetic weights and prompt")->capture_default_str();
  cmd->callback([flags] {
    Status s = run_bench(*flags);
    set_exit_code(s.ok() ? 0 : report_error(s));
  });
  add_bench_collectives_command(*bench);
}

}  // namespace tandem::cli
