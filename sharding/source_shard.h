// One rank's part of a model in any format (runtime/model_source.h), under a
// ShardPlan: the plan's ranges as a ModelPart for runtime/model_assembly.h.
// The llama2.c-only loader (shard_loader.h) reads the same slices by file
// offset; this one goes through the assembler, so GGUF and Hugging Face
// checkpoints shard the same way, quantized blocks included.
#pragma once

#include "runtime/model_assembly.h"
#include "runtime/model_source.h"
#include "runtime/status.h"
#include "sharding/shard_plan.h"

namespace tandem::sharding {

// Rank `rank`'s ranges; InvalidArgument for a rank outside the plan.
Result<ModelPart> model_part_for_rank(const ShardPlan& plan, int rank);

// FailedPrecondition when the source's shape is not the plan's (naming both
// shapes); otherwise assemble_weights()'s errors. The weights' `shard` is the
// plan's rank.
Result<LlamaWeights> load_source_shard(const ModelSource& source, const ShardPlan& plan, int rank,
                                       const AssemblyOptions& options,
                                       AssemblyReport* report = nullptr);

}  // namespace tandem::sharding
