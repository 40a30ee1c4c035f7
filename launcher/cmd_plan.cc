// `tandem plan [CONFIG] [--set K=V] [--model PRESET|FILE] [--context N]
// [--batch N] [--dtype T] [--kv-dtype T] [--node-memory-gb X] [--headroom-gb X]
// [--overhead-gb X] [--search]`: the memory each node of a run needs
// (sharding/memory_plan.h), before any worker starts. The config gives the
// nodes, tp, pp, model path and dtype; flags override them. A model file is
// only mapped for its headers (llama2.c, GGUF, safetensors), so planning
// 405B reads kilobytes, not the weights.
//
// Exit 0: it fits; 1: it does not (the table says by how much, and the
// longest context that would fit); 2: no plan could be made (a wrong command
// line, an unknown preset, an unreadable model, a split the model cannot
// take), so a script can tell "too big" from "wrong question".
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "launcher/commands.h"
#include "launcher/config.h"
#include "launcher/plan_report.h"
#include "runtime/backend_dtypes.h"
#include "runtime/loaded_model.h"
#include "runtime/model_assembly.h"
#include "runtime/model_files.h"
#include "sharding/memory_plan.h"
#include "sharding/model_presets.h"

namespace tandem::cli {
namespace {

constexpr int kNotFits = 1;
constexpr int kNoPlan = 2;

struct PlanFlags {
  std::string config;
  std::vector<std::string> overrides;
  std::string model;   // empty: the config's model.path
  std::string dtype;   // empty: the config's model.dtype
  std::string kv_dtype;  // empty: what the run keeps (run_kv_dtype)
  int64_t context = 0;  // 0: default_context (runtime/llama_weights.h)
  int64_t batch = 1;
  double node_memory_gb = 128.0;
  double headroom_gb = 4.0;
  double overhead_gb = -1.0;  // < 0: sharding::kDefaultOverheadBytes
  bool search = false;
};

int no_plan(const Status& status) {
  report_error(status);
  return kNoPlan;
}

Result<DType> parse_dtype(const std::string& flag, const std::string& name) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4K})
    if (name == dtype_name(d)) return d;
  return InvalidArgument(flag + " " + name + ": unknown (known: f32, f16, bf16, q8_0, q4_0, q4_k)");
}

Result<uint64_t> gb_to_bytes(const std::string& flag, double gb, bool zero_ok) {
  const double max_gb = static_cast<double>(sharding::kMaxNodeMemoryBytes) / sharding::kGB;
  if (!std::isfinite(gb) || gb < 0 || (gb == 0 && !zero_ok) || gb > max_gb)
    return InvalidArgument(flag + " " + std::to_string(gb) + " is outside " + (zero_ok ? "[0, " : "(0, ") +
                           std::to_string(max_gb) + "] GB");
  return static_cast<uint64_t>(std::llround(gb * static_cast<double>(sharding::kGB)));
}

struct NamedModel {
  std::string label;
  LlamaConfig config;
  std::optional<SourceDType> stored;  // how the file stores its matrices; none for a preset
};

// A preset name first (a model nobody has on disk is the common question),
// else a model file or directory in any format.
Result<NamedModel> resolve_model(const std::string& spec, launcher::ModelFormat format) {
  Result<LlamaConfig> preset = sharding::model_preset(spec);
  if (preset.ok()) return NamedModel{spec, *preset, std::nullopt};
  if (preset.status().code() != StatusCode::kNotFound) return preset.status();
  std::error_code ec;
  if (!std::filesystem::exists(spec, ec))
    return NotFound("--model " + spec + ": neither a preset (" + std::string(sharding::model_preset_names()) +
                    ") nor a file");
  TANDEM_ASSIGN_OR_RETURN(ModelFiles files, resolve_model_files(spec, "", TokenizerUse::kUnused));
  if (format != launcher::ModelFormat::kAuto && launcher::to_string(format) != to_string(files.format))
    return InvalidArgument("model.format " + std::string(launcher::to_string(format)) + ": " + files.checkpoint +
                           " is a " + std::string(to_string(files.format)) + " model");
  TANDEM_ASSIGN_OR_RETURN(const ModelSource source, open_model_source(files));
  TANDEM_ASSIGN_OR_RETURN(const SourceTensor* w_down, find_tensor(source, "layers.0.w_down"));
  return NamedModel{files.checkpoint, source.config, w_down->dtype};
}

// --dtype / model.dtype; "auto" is what a worker of the config's backend
// would keep the file's matrices as (f32 for a preset).
Result<DType> plan_dtype(const std::string& name, const NamedModel& model, const launcher::RunConfig& run) {
  if (name != "auto") return parse_dtype("--dtype", name);
  if (!model.stored) return DType::kF32;
  const BackendKind kind = run.backend.compute == launcher::ComputeBackend::kCuda ? BackendKind::kCuda : BackendKind::kCpu;
  return choose_weight_dtype(*model.stored, backend_weight_dtypes(kind));
}

// The KV cache the config's run keeps: a serve job's paged pool in
// engine.kv_dtype, any other job's one-sequence cache in f32. A plan that
// assumed less than the run allocates would say "fits" to a run that does not.
DType run_kv_dtype(const launcher::RunConfig& run) {
  const bool f16 = run.job == launcher::JobKind::kServe && run.engine.kv_dtype == launcher::KvDType::kF16;
  return f16 ? DType::kF16 : DType::kF32;
}

Result<sharding::MemoryPlanOptions> plan_options(const PlanFlags& f, const launcher::RunConfig& run,
                                                 const NamedModel& model) {
  sharding::MemoryPlanOptions o;
  o.tp = run.parallel.tp;
  o.pp = run.parallel.pp;
  const std::string dtype = f.dtype.empty() ? std::string(launcher::to_string(run.model.dtype)) : f.dtype;
  TANDEM_ASSIGN_OR_RETURN(o.weight_dtype, plan_dtype(dtype, model, run));
  if (f.kv_dtype.empty()) {
    o.kv_dtype = run_kv_dtype(run);
  } else {
    TANDEM_ASSIGN_OR_RETURN(o.kv_dtype, parse_dtype("--kv-dtype", f.kv_dtype));
  }
  o.context = f.context > 0 ? f.context : run.model.context;  // the flag, else the config's
  o.batch = f.batch;
  TANDEM_ASSIGN_OR_RETURN(uint64_t node, gb_to_bytes("--node-memory-gb", f.node_memory_gb, false));
  o.node_memory_bytes.assign(run.cluster.nodes.size(), node);
  TANDEM_ASSIGN_OR_RETURN(o.headroom_bytes, gb_to_bytes("--headroom-gb", f.headroom_gb, true));
  if (f.overhead_gb >= 0) {
    TANDEM_ASSIGN_OR_RETURN(o.overhead_bytes, gb_to_bytes("--overhead-gb", f.overhead_gb, true));
  }
  return o;
}

int run_plan(const PlanFlags& f) {
  auto run = launcher::load_config(f.config, f.overrides);
  if (!run.ok()) return no_plan(run.status());
  auto model = resolve_model(f.model.empty() ? run->model.path : f.model, run->model.format);
  if (!model.ok()) return no_plan(model.status());
  auto options = plan_options(f, *run, *model);
  if (!options.ok()) return no_plan(options.status());

  if (!f.search) {
    auto plan = sharding::make_memory_plan(model->config, *options);
    if (!plan.ok()) return no_plan(plan.status());
    std::fputs(format_memory_plan(*plan, model->label).c_str(), stdout);
    return plan->fits ? 0 : kNotFits;
  }
  auto search = sharding::search_layouts(model->config, *options);
  if (!search.ok()) return no_plan(search.status());
  std::fputs(format_layout_search(*search).c_str(), stdout);
  if (search->ranked.empty())
    return no_plan(InvalidArgument("no layout of " + std::to_string(options->node_memory_bytes.size()) +
                                   " node(s) can be planned"));
  const sharding::MemoryPlan& best = search->ranked.front();
  std::printf("\nbest: tp=%d pp=%d\n\n", best.options.tp, best.options.pp);
  std::fputs(format_memory_plan(best, model->label).c_str(), stdout);
  return best.fits ? 0 : kNotFits;
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto f = std::make_shared<PlanFlags>();
  CLI::App* cmd = app.add_subcommand("plan", "Plan each node's memory: weights, KV cache, activations; "
                                             "does it fit, and the longest context that does");
  cmd->preparse_callback([](size_t) { set_usage_exit_code(kNoPlan); });
  cmd->add_option("config", f->config, "YAML run config (default: the embedded configs/local.yaml)");
  cmd->add_option("--set", f->overrides, "Override a config key: KEY.PATH=VALUE (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--model", f->model,
                  "A preset (" + std::string(sharding::model_preset_names()) +
                      ") or a model file / directory: llama2.c, GGUF, Hugging Face (default: the config's model.path)");
  cmd->add_option("--context", f->context, "Positions per sequence (default: 8192, or the model's context or sliding window if less)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", f->batch, "Concurrent sequences, each with its own KV cache")->capture_default_str();
  cmd->add_option("--dtype", f->dtype, "Weight type: f32, f16, bf16, q8_0, q4_0, q4_k, auto (default: the config's model.dtype)");
  cmd->add_option("--kv-dtype", f->kv_dtype,
                  "KV cache type: f32, f16, bf16, q8_0 (default: what the run keeps: a serve job's engine.kv_dtype, "
                  "else f32)");
  cmd->add_option("--node-memory-gb", f->node_memory_gb, "Memory per node in GB (10^9 bytes; a DGX Spark: 128)")
      ->capture_default_str();
  cmd->add_option("--headroom-gb", f->headroom_gb, "GB per node left for the OS and the rest")->capture_default_str();
  cmd->add_option("--overhead-gb", f->overhead_gb, "GB per node for the CUDA context, NCCL/UCX buffers (default 1.5 GiB)");
  cmd->add_flag("--search", f->search, "Try every tp x pp over the config's nodes, best first");
  cmd->callback([f] { set_exit_code(run_plan(*f)); });
}

}  // namespace tandem::cli
