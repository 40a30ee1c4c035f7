// How the ranks of a training job meet: the tensor-parallel exchanges inside
// TrainModel's forward and backward, and the data-parallel gradient
// all-reduce in Trainer. The runtime depends on no transport;
// collectives/train_comm.h implements this over a Communicator with the
// job's step deadline, and the tests use the in-process transport.
//
// Every rank of the group makes the same calls in the same order. Results
// must be bitwise identical on every rank (replicated weights stay equal).
// One call at a time per TrainComm: the data-parallel overlap thread owns it
// while a backward runs, and the trainer joins that thread before using it.
#pragma once

#include <cstddef>
#include <span>

#include "runtime/status.h"

namespace tandem::train {

class TrainComm {
 public:
  virtual ~TrainComm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // x = the element-wise sum (max) of x over the group, in place.
  virtual Status all_reduce_sum(std::span<float> x) = 0;
  virtual Status all_reduce_max(std::span<float> x) = 0;
  // out = the concatenation of `bytes` from every rank's `local`, in rank order.
  virtual Status all_gather(const void* local, void* out, size_t bytes) = 0;
};

// Sums doubles (losses, squared norms) exactly the same way on every rank:
// gathered, then added in rank order.
Status all_reduce_sum_f64(TrainComm& comm, std::span<double> x);

}  // namespace tandem::train
