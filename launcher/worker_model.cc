#include "launcher/worker_model.h"

#include <algorithm>
#include <chrono>

#include "collectives/model_comm.h"
#include "runtime/llama2c_loader.h"
#include "runtime/mapped_file.h"
#include "runtime/quantize.h"

namespace tandem::launcher {
namespace {

tandem::DType runtime_dtype(DType dtype) {
  switch (dtype) {
    case DType::kF16: return tandem::DType::kF16;
    case DType::kBf16: return tandem::DType::kBF16;
    case DType::kQ8_0: return tandem::DType::kQ8_0;
    case DType::kQ4_0: return tandem::DType::kQ4_0;
    case DType::kF32: break;
  }
  return tandem::DType::kF32;
}

}  // namespace

Result<sharding::ShardPlan> plan_checkpoint(const std::string& checkpoint, int tp, int pp) {
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(checkpoint));
  TANDEM_ASSIGN_OR_RETURN(LlamaConfig shape, read_llama2c_header(*file));
  auto plan = sharding::make_shard_plan(shape, tp, pp, {});
  if (!plan.ok()) return plan.status().with_context(checkpoint + ": tp=" + std::to_string(tp) + " pp=" + std::to_string(pp));
  return plan;
}

Result<std::unique_ptr<WorkerModel>> load_worker_model(const RunConfig& config, int rank,
                                                       collectives::Communicator& host,
                                                       collectives::Communicator* device) {
  auto worker = std::make_unique<WorkerModel>();
  LoadedModel& loaded = worker->loaded;
  TANDEM_ASSIGN_OR_RETURN(loaded.files, resolve_model_files(config.model.path));
  const int tp = config.parallel.tp, pp = config.parallel.pp;
  TANDEM_ASSIGN_OR_RETURN(worker->plan, plan_checkpoint(loaded.files.checkpoint, tp, pp));
  const LlamaConfig& shape = worker->plan.model;
  // Checked before any slice is mapped: a context the model was not trained
  // for is the config's mistake, named by its key.
  LlamaModelOptions options;
  options.context = config.model.context > 0 ? config.model.context
                                             : std::min(shape.max_seq_len, sharding::kDefaultPlanContext);
  if (options.context > shape.max_seq_len) {
    return InvalidArgument("model.context " + std::to_string(options.context) + ": context " +
                           std::to_string(options.context) + " is outside [1, " +
                           std::to_string(shape.max_seq_len) + "], the model's trained context");
  }
  TANDEM_ASSIGN_OR_RETURN(LlamaWeights weights, sharding::load_llama2c_shard(loaded.files.checkpoint, worker->plan,
                                                                              rank, &worker->report));
  // The checkpoint is f32; model.dtype asks for the matrices in another type
  // (norms stay f32). Each rank converts only its own slices, after loading.
  if (config.model.dtype != DType::kF32) {
    auto converted = convert_weights(weights, runtime_dtype(config.model.dtype));
    if (!converted.ok())
      return converted.status().with_context("model.dtype " + std::string(to_string(config.model.dtype)));
    weights = std::move(*converted);
  }
  TANDEM_ASSIGN_OR_RETURN(loaded.tokenizer,
                          Tokenizer::load_llama2c(loaded.files.tokenizer, static_cast<int>(shape.vocab_size)));
  BackendOptions backend;
  backend.kind = config.backend.compute == ComputeBackend::kCuda ? BackendKind::kCuda : BackendKind::kCpu;
  backend.threads = config.backend.threads;
  TANDEM_ASSIGN_OR_RETURN(loaded.backend, make_backend(backend));
  if (tp * pp > 1) {
    const auto step = std::chrono::milliseconds(static_cast<int64_t>(config.launch.step_timeout_s * 1000));
    collectives::Communicator& tensors = device != nullptr ? *device : host;
    TANDEM_ASSIGN_OR_RETURN(worker->comm, collectives::make_model_comm(tensors, host, *loaded.backend, tp, pp, step));
  }
  TANDEM_ASSIGN_OR_RETURN(loaded.model,
                          LlamaModel::create(*loaded.backend, std::move(weights), options, worker->comm.get()));
  return worker;
}

}  // namespace tandem::launcher
