// `tandem bench generate`: prefill and decode speed of one model on this
// machine, with the decode memory roofline measured in the same run.
#include <fmt/core.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <vector>

#include "launcher/bench_stats.h"
#include "launcher/commands.h"
#include "runtime/deadline.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/cuda/cuda_backend.h"
#include "runtime/llama2c_loader.h"
#include "runtime/llama_model.h"
#include "runtime/memory_bandwidth.h"
#include "runtime/model_files.h"
#include "runtime/quantize.h"
#include "runtime/synthetic.h"

namespace tandem::cli {
namespace {

struct BenchFlags {
  std::string model;
  std::string shape = "stories110M";
  std::string backend = "cpu";
  std::string dtype = "f32";
  int device = 0;
  int64_t prompt_tokens = 128;
  int64_t decode_tokens = 64;
  int64_t batch = 1;
  int repeat = 3;
  int threads = 0;
  int bandwidth_mib = 0;  // 0: 256 on cpu, 1024 on cuda (beyond any L2)
  uint64_t seed = 1;
};

double peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) * 1024.0;  // Linux reports KiB
}

Result<DType> parse_dtype(const std::string& name) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4K})
    if (name == dtype_name(d)) return d;
  return InvalidArgument("unknown --dtype " + name + " (known: f32, f16, bf16, q8_0, q4_0, q4_k)");
}

Result<std::unique_ptr<LlamaModel>> build_model(const BenchFlags& f, Backend& backend, DType dtype,
                                                std::string& description) {
  LlamaModelOptions options;
  // On the GPU the whole prompt is one forward, so prefill runs as GEMMs.
  if (f.backend == "cuda") options.max_batch = std::max(f.prompt_tokens, f.batch);
  if (!f.model.empty()) {
    TANDEM_ASSIGN_OR_RETURN(ModelFiles files, resolve_model_files(f.model, "", TokenizerUse::kUnused));
    TANDEM_ASSIGN_OR_RETURN(LlamaWeights w, load_llama2c(files.checkpoint));
    if (dtype != DType::kF32) {
      TANDEM_ASSIGN_OR_RETURN(w, convert_weights(w, dtype));
    }
    description = files.checkpoint;
    return LlamaModel::create(backend, std::move(w), options);
  }
  auto config = synthetic_shape(f.shape);
  if (!config)
    return InvalidArgument("unknown --shape " + f.shape + " (known: " +
                           std::string(synthetic_shape_names()) + ")");
  TANDEM_ASSIGN_OR_RETURN(LlamaWeights w, make_synthetic_weights_on(backend, *config, f.seed, dtype));
  description = f.shape + " (synthetic, seed " + std::to_string(f.seed) + ")";
  return LlamaModel::create(backend, std::move(w), options);
}

// Multiply-adds of the matrix products of one prefill: every layer's matrices
// once per token, the classifier once (only the last token's logits).
double prefill_matmul_flops(const LlamaConfig& c, int64_t tokens) {
  const double q_dim = static_cast<double>(c.n_heads * c.head_dim());
  const double per_layer = c.dim * q_dim * 2 + 2.0 * c.kv_dim() * c.dim + 3.0 * c.hidden_dim * c.dim;
  return 2.0 * (per_layer * c.n_layers * tokens + static_cast<double>(c.vocab_size) * c.dim);
}

Status run_bench(const BenchFlags& f) {
  if (f.prompt_tokens < 1 || f.decode_tokens < 1 || f.repeat < 1)
    return InvalidArgument("--prompt-tokens, --decode-tokens and --repeat must be at least 1");
  if (f.batch != 1 && f.batch != 16) return InvalidArgument("--batch must be 1 or 16");
  TANDEM_ASSIGN_OR_RETURN(DType dtype, parse_dtype(f.dtype));
  BackendOptions backend_options;
  TANDEM_ASSIGN_OR_RETURN(backend_options.kind, parse_backend_kind(f.backend));
  backend_options.threads = f.threads;
  backend_options.device = f.device;
  const bool gpu = backend_options.kind == BackendKind::kCuda;
  TANDEM_ASSIGN_OR_RETURN(auto backend, make_backend(backend_options));
  std::string description;
  const auto load_start = std::chrono::steady_clock::now();
  TANDEM_ASSIGN_OR_RETURN(auto model, build_model(f, *backend, dtype, description));
  const double load_s = seconds_since(load_start);
  const LlamaConfig& c = model->config();
  const int64_t decode_positions = f.decode_tokens * f.batch;
  if (f.prompt_tokens + decode_positions > model->context())
    return InvalidArgument(fmt::format("--prompt-tokens + --decode-tokens x --batch = {} exceeds the context of {}",
                                       f.prompt_tokens + decode_positions, model->context()));

  std::mt19937 rng(static_cast<uint32_t>(f.seed));
  std::uniform_int_distribution<int> pick(3, static_cast<int>(c.vocab_size) - 1);
  std::vector<int> prompt(f.prompt_tokens);
  for (int& t : prompt) t = pick(rng);
  std::vector<int> step_tokens(f.batch);
  for (int& t : step_tokens) t = pick(rng);
  std::vector<float> logits(c.vocab_size);

  std::vector<double> prefill_rates, decode_rates;
  for (int r = 0; r < f.repeat + 1; ++r) {  // the first round warms caches, pages and scratch
    auto start = std::chrono::steady_clock::now();
    TANDEM_RETURN_IF_ERROR(model->forward(prompt, 0, logits));
    const double prefill_s = seconds_since(start);
    int token = prompt.back();
    start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < f.decode_tokens; ++i) {
      // Batch 1: greedy decode, the argmax taken on the backend. Batch 16: 16
      // tokens per forward (see docs/benchmarks.md for what that measures).
      step_tokens.back() = token;
      std::span<const int> step(step_tokens);
      TANDEM_ASSIGN_OR_RETURN(token, model->forward_argmax(step, f.prompt_tokens + i * f.batch));
    }
    const double decode_s = seconds_since(start);
    if (r == 0) continue;
    prefill_rates.push_back(f.prompt_tokens / prefill_s);
    decode_rates.push_back(decode_positions / decode_s);
  }
  const double peak = peak_rss_bytes();  // before the bandwidth probe's buffers exist

  const size_t probe = static_cast<size_t>(f.bandwidth_mib > 0 ? f.bandwidth_mib : (gpu ? 1024 : 256)) << 20;
  double bandwidth = 0;
  std::string bw_note;
  if (gpu) {
    TANDEM_ASSIGN_OR_RETURN(bandwidth, cuda_copy_bandwidth(*backend, probe, 9));
    bw_note = fmt::format("device-to-device copy, read+write, {} MiB, median of 9", probe >> 20);
  } else {
    auto* cpu = dynamic_cast<CpuBackend*>(backend.get());
    TANDEM_ASSIGN_OR_RETURN(Bandwidth bw, measure_copy_bandwidth(cpu->pool(), probe, 5));
    bandwidth = bw.bytes_per_second;
    bw_note = fmt::format("copy, read+write, 2 x {} MiB, {} threads, median of 5", probe >> 20, bw.threads);
  }
  // A decode forward reads every weight once plus the KV cache up to each
  // token's position (the mean position over the decoded tokens).
  const double mean_pos = f.prompt_tokens + (decode_positions - 1) / 2.0;
  const double bytes_per_forward = static_cast<double>(model->weight_bytes_per_token()) +
                                   f.batch * mean_pos * static_cast<double>(model->kv_bytes_per_position());
  const double decode = median(decode_rates), roofline = f.batch * bandwidth / bytes_per_forward;

  fmt::print("model        {}: {:.1f}M params, dim {} layers {} heads {}/{} vocab {}, {} weights ({:.2f} GB)\n",
             description, c.parameter_count() / 1e6, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
             dtype_name(dtype), model->weight_bytes_per_token() / 1e9);
  fmt::print("backend      {}  (model ready in {:.1f} s)\n", backend->name(), load_s);
  fmt::print("memory bw    {:.2f} GB/s  ({})\n", bandwidth / 1e9, bw_note);
  const double prefill = median(prefill_rates);
  fmt::print("prefill      {} tokens: {:.1f} tok/s  (median of {})\n", f.prompt_tokens, prefill, f.repeat);
  if (gpu) {
    const DType gemm_type = dtype == DType::kF32 ? DType::kF32 : DType::kBF16;
    TANDEM_ASSIGN_OR_RETURN(double gemm, cuda_gemm_flops(*backend, gemm_type, f.prompt_tokens, c.hidden_dim, c.dim, 9));
    const double achieved = prefill_matmul_flops(c, f.prompt_tokens) * prefill / f.prompt_tokens;
    fmt::print("gemm rate    {:.1f} TFLOP/s  (cuBLAS {} [{} x {}] x [{} x {}], median of 9); prefill matmuls at "
               "{:.1f} TFLOP/s = {:.0f}%\n",
               gemm / 1e12, dtype_name(gemm_type), f.prompt_tokens, c.dim, c.dim, c.hidden_dim, achieved / 1e12,
               100.0 * achieved / gemm);
  }
  fmt::print("decode       {} x {} tokens: {:.2f} tok/s  (batch {}, median of {})\n", f.decode_tokens, f.batch,
             decode, f.batch, f.repeat);
  fmt::print("roofline     {:.1f} MB/forward -> {:.2f} tok/s max; reached {:.0f}%\n", bytes_per_forward / 1e6,
             roofline, 100.0 * decode / roofline);
  if (gpu) {
    TANDEM_ASSIGN_OR_RETURN(double read, cuda_read_bandwidth(*backend, probe, 9));
    const double read_roofline = f.batch * read / bytes_per_forward;
    fmt::print("read-only    {:.2f} GB/s  (a kernel that only reads {} MiB, median of 9) -> {:.2f} tok/s max; "
               "reached {:.0f}%\n",
               read / 1e9, probe >> 20, read_roofline, 100.0 * decode / read_roofline);
  }
  fmt::print("peak rss     {:.1f} MB  (model {:.1f} MB allocated on the {} + weights)\n", peak / 1e6,
             model->allocated_bytes() / 1e6, gpu ? "GPU" : "host");
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
  cmd->add_option("--backend", flags->backend, "cpu or cuda")->capture_default_str();
  cmd->add_option("--device", flags->device, "CUDA device ordinal")->capture_default_str();
  cmd->add_option("--dtype", flags->dtype, "Weight storage: f32, f16, bf16, q8_0, q4_0, q4_k (cuda: not f16 or q4_k)")->capture_default_str();
  cmd->add_option("--batch", flags->batch, "Tokens per decode forward: 1, or 16 (see docs/benchmarks.md)")
      ->capture_default_str();
  cmd->add_option("--prompt-tokens", flags->prompt_tokens, "Tokens in the prefill")->capture_default_str();
  cmd->add_option("--decode-tokens", flags->decode_tokens, "Tokens decoded one by one")->capture_default_str();
  cmd->add_option("--repeat", flags->repeat, "Timed rounds (after one warm-up)")->capture_default_str();
  cmd->add_option("--threads", flags->threads, "CPU threads, 0 = all")->capture_default_str();
  cmd->add_option("--bandwidth-mib", flags->bandwidth_mib, "Bandwidth-probe buffer, 0 = 256 (cpu) / 1024 (cuda)")
      ->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Seed of the synthetic weights and prompt")->capture_default_str();
  cmd->callback([flags] {
    Status s = run_bench(*flags);
    set_exit_code(s.ok() ? 0 : report_error(s));
  });
  add_bench_collectives_command(*bench);
  add_bench_batch_command(*bench);
  add_bench_kernels_command(*bench);
}

}  // namespace tandem::cli
