// The training job's TrainComm (runtime/train/train_comm.h) over a
// Communicator, with the job's step deadline on every call: a rank that never
// reaches a collective makes the others fail DEADLINE_EXCEEDED, not hang.
//
// The communicator must move host memory (the ucx and local backends): the
// trainer's gradients and gathered bytes live in host memory, and an odd-sized
// all_gather stages through a host scratch buffer.
#pragma once

#include <chrono>
#include <memory>

#include "collectives/communicator.h"
#include "runtime/train/train_comm.h"

namespace tandem::collectives {

// `comm` must outlive the returned TrainComm. InvalidArgument for a
// non-positive step_timeout (every call would time out at once).
Result<std::unique_ptr<train::TrainComm>> make_train_comm(Communicator& comm,
                                                          std::chrono::milliseconds step_timeout);

}  // namespace tandem::collectives
