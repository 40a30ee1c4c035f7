// The ModelComm of a device communicator on a backend with a stream
// (make_model_comm's choice for NCCL on the cuda backend; not a public
// header): the tensor exchanges are enqueued on the backend's stream, like
// its kernels, and never waited for, so a sharded decode step has no host
// round trip and is recorded as a CUDA graph. Their errors surface through
// the backend's wait check (Backend::set_wait_check), at the host's next
// wait for the stream (the step's read-back of its result):
//  - an asynchronous NCCL error (a peer's process died, a link dropped);
//  - abort() of the communicator, from any thread;
//  - a wait longer than the step timeout while exchanges may be pending:
//    the communicator is aborted (which ends the exchanges still waiting for
//    the peer) and the wait fails with DEADLINE_EXCEEDED.
// Each names this rank and the exchanges its step makes (which peers).
#pragma once

#include <chrono>
#include <memory>

#include "collectives/communicator.h"
#include "runtime/backend.h"
#include "runtime/model_comm.h"

namespace tandem::collectives {

// Point-to-point tags of a forward over host transports; a (peer, tag) pair
// keeps its order. (NCCL orders per peer and takes no tags.)
constexpr uint32_t kActivationTag = 0x74610001;  // stage -> next stage
constexpr uint32_t kResultTag = 0x74610002;      // last stage -> rank 0

// `exchanges` belongs to `tensors`; backend.native_stream() must be set.
// Arguments already checked by make_model_comm.
std::unique_ptr<ModelComm> make_stream_model_comm(Communicator& tensors, StreamExchanges& exchanges,
                                                  Communicator& host, Backend& backend, int tp, int pp,
                                                  std::chrono::milliseconds step_timeout);

}  // namespace tandem::collectives
