// A worker's model: the ShardPlan of its job's layout, its rank's slices of
// the model in any format (sharding/source_shard.h: mapped in place, or
// copied where a slice is strided or converted; never the whole file), the backend, and the ModelComm through which its forward
// meets the other ranks' (collectives/model_comm.h).
#pragma once

#include <memory>
#include <optional>

#include "collectives/communicator.h"
#include "launcher/config.h"
#include "runtime/loaded_model.h"
#include "runtime/model_comm.h"
#include "sharding/memory_plan.h"
#include "sharding/shard_loader.h"
#include "sharding/shard_plan.h"

namespace tandem::launcher {

struct WorkerModel {
  std::unique_ptr<ModelComm> comm;  // declared first: the model uses it until destroyed
  LoadedModel loaded;
  sharding::ShardPlan plan;
  sharding::ShardLoadReport report;
};

// model.dtype -> the dtype the loader stores matrices in (unset: auto).
Result<std::optional<tandem::DType>> weight_dtype_of(launcher::DType configured);

// The tp x pp plan of a model, from its headers alone (no weight is read),
// with MLP columns split in blocks of `weight_dtype`: the plan's refusal
// names the file and the split.
Result<sharding::ShardPlan> plan_model(const ModelSource& source, int tp, int pp,
                                       tandem::DType weight_dtype = tandem::DType::kF32);

// Plans the config's tp x pp layout for the checkpoint at config.model.path,
// loads rank `rank`'s shard on the config's backend and connects it: the
// activations through `device` when given (NCCL, GPU memory) or `host`,
// results through `host`. Errors name the file, the plan's refusal (e.g.
// tp=3 divides neither the heads ...) or the backend's (cuda without a GPU).
Result<std::unique_ptr<WorkerModel>> load_worker_model(const RunConfig& config, int rank,
                                                       collectives::Communicator& host,
                                                       collectives::Communicator* device = nullptr);

}  // namespace tandem::launcher
