// The Communicator: how tandem's workers cooperate. One per rank; every rank
// of a group calls the same collectives in the same order (as with NCCL/MPI).
//
// Contract:
//  - Buffers are host memory for the `ucx` and `local` backends and device
//    memory for `nccl`. send and recv buffers of a collective may be the same
//    (in place) where noted; otherwise they must not overlap.
//  - Every call takes a Deadline. A call that cannot complete by then returns
//    DEADLINE_EXCEEDED, and the communicator is then aborted: a collective
//    that timed out on one rank has left the others mid-algorithm, so no
//    further call can be trusted to line up.
//  - abort(reason), from any thread, makes every pending and future call
//    return ABORTED with that reason. A dead peer, a dropped link or a
//    protocol error found by any call aborts the communicator the same way
//    (UNAVAILABLE / DATA_LOSS for the call that found it).
//  - Errors are Status values whose message names the rank, the operation,
//    the peer (when one is to blame) and the cause, e.g.
//    "rank 0: all_reduce: peer 1: connection reset (ucx ...)".
//  - Calls on one communicator are not concurrent: one thread drives it
//    (abort() excepted).
//  - A device communicator (nccl) may also offer StreamExchanges: the same
//    exchanges enqueued on a caller's stream without waiting for them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/deadline.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace tandem::collectives {

enum class ReduceOp { kSum, kMax, kMin };
std::string_view reduce_op_name(ReduceOp op);

// Types the collectives reduce: f32, f16, bf16, i32, i64 (Status
// INVALID_ARGUMENT for others). Halves are reduced in float and rounded back.
bool reducible(DType dtype);
size_t dtype_size(DType dtype);  // bytes per element of a reducible type

// Exchanges enqueued on a caller's stream (an opaque cudaStream_t, e.g.
// Backend::native_stream(), on the communicator's GPU) ordered with the
// kernels around them: a call returns once the exchange is enqueued (NCCL
// may first connect to the peer, by the deadline), not once it is done, and
// needs no host wait, so a CUDA graph may record it. Whether the work itself
// succeeded shows in check(), which the caller runs where the host waits for
// the stream anyway. Same thread and abort rules as the Communicator that
// owns it.
class StreamExchanges {
 public:
  virtual ~StreamExchanges() = default;
  virtual Status enqueue_all_reduce(const void* send, void* recv, size_t count, DType dtype, ReduceOp op,
                                    void* stream, Deadline deadline) = 0;
  // Point to point, ordered per peer (no tags).
  virtual Status enqueue_send(const void* buffer, size_t bytes, int peer, void* stream, Deadline deadline) = 0;
  virtual Status enqueue_recv(void* buffer, size_t bytes, int peer, void* stream, Deadline deadline) = 0;
  // Never blocks. OK while the enqueued work can still complete; the
  // asynchronous error of that work (the communicator is then aborted), or
  // ABORTED with the reason after abort(). After an abort it also ends the
  // enqueued work (ncclCommAbort), so a stream waiting on a gone peer moves on.
  virtual Status check() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend_name() const = 0;

  // recv[i] = op over ranks of send[i], i < count, on every rank. In place
  // when send == recv.
  virtual Status all_reduce(const void* send, void* recv, size_t count, DType dtype, ReduceOp op,
                            Deadline deadline) = 0;
  // recv = concat over ranks r of send_r (count elements each); recv holds
  // size() * count. In place when send == recv + rank() * count bytes.
  virtual Status all_gather(const void* send, void* recv, size_t count, DType dtype,
                            Deadline deadline) = 0;
  // recv = the rank()-th block of count elements of op over ranks of send
  // (send holds size() * count).
  virtual Status reduce_scatter(const void* send, void* recv, size_t count, DType dtype,
                                ReduceOp op, Deadline deadline) = 0;
  // buffer on every rank = buffer on root.
  virtual Status broadcast(void* buffer, size_t count, DType dtype, int root, Deadline deadline) = 0;
  // Point to point; a send matches the recv with the same (peer, tag), in
  // order. Sizes must agree: a recv of a different size is DATA_LOSS.
  virtual Status send(const void* buffer, size_t bytes, int peer, uint32_t tag, Deadline deadline) = 0;
  virtual Status recv(void* buffer, size_t bytes, int peer, uint32_t tag, Deadline deadline) = 0;
  virtual Status barrier(Deadline deadline) = 0;

  // Thread-safe, idempotent; the first reason wins.
  virtual void abort(std::string_view reason) = 0;

  // This communicator's exchanges enqueued on a caller's stream, owned by it;
  // nullptr for the host transports (ucx, local), which need the host.
  virtual StreamExchanges* stream_exchanges() { return nullptr; }
};

}  // namespace tandem::collectives
