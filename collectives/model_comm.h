// LlamaModel's ModelComm (runtime/model_comm.h) over Communicators: how a
// sharded forward's ranks meet, with the job's step deadline on every call.
//
// Rank layout as sharding/shard_plan.h: rank = stage * tp + tp_rank. The
// stage's tensor-parallel ranks all-reduce; with pp == 1 the stage is the
// whole group (tp > 1 with pp > 1 would need a communicator per stage, which
// LlamaModel refuses for now). Pipeline hand-offs go to rank +- tp; results
// from the last stage's tp rank 0 to rank 0.
//
// `tensors` moves the model's activations, so it must read the backend's
// memory (ucx/local: host memory, the cpu backend; nccl: device memory);
// `host` moves host results (logits, candidates) and may be the same
// communicator when the backend's memory is host memory.
//
// Two implementations, chosen here:
//  - `tensors` offers StreamExchanges (nccl) and the backend has a stream
//    (Backend::native_stream(): cuda): the all-reduces and hand-offs are
//    enqueued on the backend's stream with no host wait (stream_ordered()),
//    so the decode step is recorded as a CUDA graph; their errors and the
//    step deadline are checked where the host waits for the stream anyway
//    (stream_model_comm.h).
//  - otherwise (ucx, local): the backend is synchronized before each
//    exchange so a host transport never reads memory a kernel is still
//    writing, and each exchange completes before the call returns.
#pragma once

#include <chrono>
#include <memory>

#include "collectives/communicator.h"
#include "runtime/backend.h"
#include "runtime/model_comm.h"

namespace tandem::collectives {

// InvalidArgument when tp * pp is not the communicators' size.
Result<std::unique_ptr<ModelComm>> make_model_comm(Communicator& tensors, Communicator& host,
                                                   Backend& backend, int tp, int pp,
                                                   std::chrono::milliseconds step_timeout);

}  // namespace tandem::collectives
