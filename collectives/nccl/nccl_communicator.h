// The NCCL backend: a Communicator over device buffers (builds with CUDA and
// NCCL only; TANDEM_HAVE_NCCL is defined then). The NCCL unique id travels
// through the bootstrap; the communicator is non-blocking and ncclCommAbort
// ends it on a deadline or abort().
#pragma once

#include <memory>

#include "collectives/bootstrap/bootstrap.h"
#include "collectives/collectives.h"
#include "collectives/communicator.h"
#include "runtime/deadline.h"
#include "runtime/status.h"

namespace tandem::collectives {

// Joins this rank to its group through an already-connected bootstrap (which
// the caller keeps alive as long as the communicator), by the deadline.
Result<std::unique_ptr<Communicator>> make_nccl_communicator(const CommConfig& config, Bootstrap& bootstrap,
                                                             Deadline deadline);

}  // namespace tandem::collectives
