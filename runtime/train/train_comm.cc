#include "runtime/train/train_comm.h"

#include <cstring>
#include <vector>

namespace tandem::train {

// An all_reduce of f64 would let the transport pick the order of additions
// (a ring adds in a different order on each rank); gathering and adding in
// rank order makes every rank compute the very same expression.
Status all_reduce_sum_f64(TrainComm& comm, std::span<double> x) {
  if (x.empty()) return Status::Ok();
  const size_t ranks = static_cast<size_t>(comm.size());
  std::vector<double> gathered(ranks * x.size());
  TANDEM_RETURN_IF_ERROR(comm.all_gather(x.data(), gathered.data(), x.size_bytes()));
  for (size_t i = 0; i < x.size(); ++i) {
    // Starting from rank 0's value rather than 0.0 keeps a lone -0.0 as is.
    double sum = gathered[i];
    for (size_t r = 1; r < ranks; ++r) sum += gathered[r * x.size() + i];
    x[i] = sum;
  }
  return Status::Ok();
}

}  // namespace tandem::train
