// How the ranks of a sharded model meet inside a forward. LlamaModel calls
// these at fixed points of every forward, in the same order on every rank
// (tensor parallelism: after the attention output projection, after the MLP
// down projection and for the vocab-parallel embedding; pipeline parallelism:
// activations handed from stage to stage), so an implementation only moves
// bytes. collectives/model_comm.h implements it over a Communicator; the
// runtime itself depends on no transport.
//
// Tensors are in the model's backend memory. An implementation over host
// transports must see the backend's work finished first (the cpu backend
// runs each kernel as it is called, so its memory is always current). Every
// call has the implementation's deadline; a failure aborts the forward with
// the transport's Status.
//
// A stream-ordered implementation (stream_ordered(): NCCL on the cuda
// backend) instead enqueues all_reduce_sum, send_next and recv_prev on the
// backend's stream (Backend::native_stream()) like a kernel and returns
// without waiting: their failures then surface at the backend's next host
// wait (Backend::set_wait_check), by the implementation's deadline.
#pragma once

#include <cstddef>

#include "runtime/status.h"
#include "runtime/tensor.h"

namespace tandem {

class ModelComm {
 public:
  virtual ~ModelComm() = default;

  // True when the tensor exchanges below are enqueued on the backend's
  // stream with no host wait: a decode step containing them can then be
  // recorded by Backend::decode_step and replayed, which LlamaModel does.
  virtual bool stream_ordered() const { return false; }

  // x = the sum of x over the tensor-parallel ranks of this stage (f32, in place).
  virtual Status all_reduce_sum(const Tensor& x) = 0;
  // Host memory: out = the concatenation over this stage's tensor-parallel
  // ranks, in tp_rank order, of `bytes` from each rank's `local`.
  virtual Status all_gather_host(const void* local, void* out, size_t bytes) = 0;
  // Pipeline: activations to the same tp rank of the next stage, from the same
  // tp rank of the previous one.
  virtual Status send_next(const Tensor& x) = 0;
  virtual Status recv_prev(const Tensor& x) = 0;
  // Host memory: the last stage's result to rank 0 (called on the last
  // stage's tp rank 0, and on rank 0, when they are different ranks).
  virtual Status send_to_leader(const void* data, size_t bytes) = 0;
  virtual Status recv_from_last_stage(void* data, size_t bytes) = 0;
};

}  // namespace tandem
