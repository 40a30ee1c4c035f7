// Point-to-point messaging between the ranks of a group, over host memory:
// what a host collective algorithm needs from a network. Implemented by
// collectives/ucx (UCP tag matching) and collectives/local (threads in one
// process, for tests). The collective algorithms (host_communicator.h) are
// written once against this interface.
//
// Contract:
//  - post_send/post_recv start a transfer and return at once; the buffer must
//    stay valid (and, for a send, unchanged) until wait() has completed it.
//  - Messages between a pair of ranks with the same tag match in posting order.
//    A received message larger than the posted buffer is DATA_LOSS.
//  - wait() drives progress until every given request completes, one fails,
//    or the deadline passes (DEADLINE_EXCEEDED); on return every request is
//    finished or cancelled, so its buffer may be reused.
//  - After abort() or a failure of the link, all calls fail with the cause.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "runtime/deadline.h"
#include "runtime/status.h"

namespace tandem::collectives {

// Opaque handle of a posted transfer; 0 is never a valid one.
using RequestId = uint64_t;

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string_view name() const = 0;

  virtual Result<RequestId> post_send(int peer, uint64_t tag, const void* data, size_t bytes) = 0;
  virtual Result<RequestId> post_recv(int peer, uint64_t tag, void* data, size_t bytes) = 0;
  virtual Status wait(std::span<const RequestId> requests, Deadline deadline) = 0;

  // Thread-safe; makes pending and future operations fail with ABORTED.
  virtual void abort(std::string_view reason) = 0;
};

}  // namespace tandem::collectives
