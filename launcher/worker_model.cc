#include "launcher/worker_model.h"

#include <algorithm>
#include <chrono>

#include "collectives/model_comm.h"
#include "runtime/deadline.h"
#include "sharding/source_shard.h"

namespace tandem::launcher {
namespace {

// A format the config names must be what the files are: a mismatch is the
// config's mistake, named by its key.
Status check_format(ModelFormat configured, const ModelFiles& files) {
  if (configured == ModelFormat::kAuto) return Status::Ok();
  if (to_string(configured) == to_string(files.format)) return Status::Ok();
  return InvalidArgument("model.format " + std::string(to_string(configured)) + ": " + files.checkpoint +
                         " is a " + std::string(to_string(files.format)) + " model");
}

uint64_t source_bytes(const ModelSource& source) {
  uint64_t total = 0;
  for (const auto& [name, t] : source.tensors) total += t.bytes;
  return total;
}

}  // namespace

Result<std::optional<tandem::DType>> weight_dtype_of(launcher::DType configured) {
  switch (configured) {
    case launcher::DType::kAuto: return std::optional<tandem::DType>{};
    case launcher::DType::kF32: return std::optional{tandem::DType::kF32};
    case launcher::DType::kBf16: return std::optional{tandem::DType::kBF16};
    case launcher::DType::kQ8_0: return std::optional{tandem::DType::kQ8_0};
    case launcher::DType::kQ4_0: return std::optional{tandem::DType::kQ4_0};
    case launcher::DType::kQ4_K: return std::optional{tandem::DType::kQ4K};
    case launcher::DType::kF16: return std::optional{tandem::DType::kF16};
  }
  return InvalidArgument("model.dtype: unknown value");
}

Result<sharding::ShardPlan> plan_model(const ModelSource& source, int tp, int pp, tandem::DType weight_dtype) {
  auto plan = sharding::make_shard_plan(source.config, tp, pp, {}, weight_dtype);
  if (!plan.ok()) return plan.status().with_context(source.path + ": tp=" + std::to_string(tp) + " pp=" + std::to_string(pp));
  return plan;
}

Result<std::unique_ptr<WorkerModel>> load_worker_model(const RunConfig& config, int rank,
                                                       collectives::Communicator& host,
                                                       collectives::Communicator* device) {
  auto worker = std::make_unique<WorkerModel>();
  LoadedModel& loaded = worker->loaded;
  TANDEM_ASSIGN_OR_RETURN(loaded.files, resolve_model_files(config.model.path));
  TANDEM_RETURN_IF_ERROR(check_format(config.model.format, loaded.files));
  TANDEM_ASSIGN_OR_RETURN(const ModelSource source, open_model_source(loaded.files));
  BackendOptions backend;
  backend.kind = config.backend.compute == ComputeBackend::kCuda ? BackendKind::kCuda : BackendKind::kCpu;
  backend.threads = config.backend.threads;
  AssemblyOptions assembly = assembly_options_for(backend.kind);
  TANDEM_ASSIGN_OR_RETURN(assembly.weight_dtype, weight_dtype_of(config.model.dtype));
  // The plan splits the MLP columns in blocks of the dtype its down projection is stored in.
  TANDEM_ASSIGN_OR_RETURN(const SourceTensor* w_down, find_tensor(source, "layers.0.w_down"));
  const tandem::DType plan_dtype =
      assembly.weight_dtype.value_or(choose_weight_dtype(w_down->dtype, assembly.backend_dtypes));
  const int tp = config.parallel.tp, pp = config.parallel.pp;
  TANDEM_ASSIGN_OR_RETURN(worker->plan, plan_model(source, tp, pp, plan_dtype));
  const LlamaConfig& shape = worker->plan.model;
  // Checked before any slice is read: a context the model was not trained
  // for is the config's mistake, named by its key.
  LlamaModelOptions options;
  options.context = config.model.context > 0 ? config.model.context : default_context(shape);
  TANDEM_RETURN_IF_ERROR(
      check_context(shape, options.context).with_context("model.context " + std::to_string(options.context)));
  if (config.job == JobKind::kServe) {
    // The scheduler's pool replaces the one-sequence cache: every request's
    // positions live in blocks (runtime/paged_kv.h).
    const EngineConfig& engine = config.engine;
    options.max_batch = engine.max_batch_tokens;
    options.kv_block_size = engine.kv_block_size;
    options.kv_blocks = engine.kv_blocks > 0
                            ? engine.kv_blocks
                            : engine.max_running * kv_blocks_for(options.context, engine.kv_block_size);
    options.kv_dtype = engine.kv_dtype == KvDType::kF16 ? tandem::DType::kF16 : tandem::DType::kF32;
    options.contiguous_kv = false;
  }
  TANDEM_ASSIGN_OR_RETURN(LlamaWeights weights,
                          sharding::load_source_shard(source, worker->plan, rank, assembly, &loaded.assembly));
  sharding::ShardLoadReport& report = worker->report;
  report.rank = rank;
  report.mapped_bytes = loaded.assembly.mapped_bytes;
  report.copied_bytes = loaded.assembly.converted_bytes;
  report.file_bytes = source_bytes(source);
  report.model_weight_bytes = worker->plan.total_weight_bytes;
  TANDEM_ASSIGN_OR_RETURN(loaded.tokenizer, load_model_tokenizer(loaded.files, source));
  TANDEM_ASSIGN_OR_RETURN(loaded.backend, make_backend(backend));
  if (tp * pp > 1) {
    const auto step = seconds_to_ms(config.launch.step_timeout_s);
    collectives::Communicator& tensors = device != nullptr ? *device : host;
    TANDEM_ASSIGN_OR_RETURN(worker->comm, collectives::make_model_comm(tensors, host, *loaded.backend, tp, pp, step));
  }
  TANDEM_ASSIGN_OR_RETURN(loaded.model,
                          LlamaModel::create(*loaded.backend, std::move(weights), options, worker->comm.get()));
  return worker;
}

}  // namespace tandem::launcher
