#include "collectives/train_comm.h"

#include <cstring>
#include <string>
#include <vector>

namespace tandem::collectives {
namespace {

// The Communicator has no byte dtype: bytes travel as i32 words, which the
// collectives move without converting. A count that is not a whole number of
// words is padded per rank and the padding squeezed out afterwards.
constexpr size_t kWord = sizeof(int32_t);

class CommunicatorTrainComm final : public train::TrainComm {
 public:
  CommunicatorTrainComm(Communicator& comm, std::chrono::milliseconds timeout)
      : comm_(comm), timeout_(timeout) {}

  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }

  Status all_reduce_sum(std::span<float> x) override { return all_reduce(x, ReduceOp::kSum); }
  Status all_reduce_max(std::span<float> x) override { return all_reduce(x, ReduceOp::kMax); }

  Status all_gather(const void* local, void* out, size_t bytes) override {
    if (bytes % kWord == 0)
      return comm_.all_gather(local, out, bytes / kWord, DType::kI32, deadline());
    const size_t words = bytes / kWord + 1;
    const size_t padded = words * kWord;
    const auto ranks = static_cast<size_t>(comm_.size());
    // Gathered in place: this rank's padded block is its slot of the scratch.
    staging_.assign(ranks * padded, 0);
    std::memcpy(staging_.data() + static_cast<size_t>(comm_.rank()) * padded, local, bytes);
    TANDEM_RETURN_IF_ERROR(comm_.all_gather(staging_.data() + static_cast<size_t>(comm_.rank()) * padded,
                                            staging_.data(), words, DType::kI32, deadline()));
    auto* dest = static_cast<char*>(out);
    for (size_t r = 0; r < ranks; ++r) std::memcpy(dest + r * bytes, staging_.data() + r * padded, bytes);
    return Status::Ok();
  }

 private:
  Status all_reduce(std::span<float> x, ReduceOp op) {
    return comm_.all_reduce(x.data(), x.data(), x.size(), DType::kF32, op, deadline());
  }
  // Fresh per call: the timeout bounds one exchange, not the whole step.
  Deadline deadline() const { return deadline_after(timeout_); }

  Communicator& comm_;
  std::chrono::milliseconds timeout_;
  std::vector<char> staging_;  // kept between calls: odd sizes repeat every step
};

}  // namespace

Result<std::unique_ptr<train::TrainComm>> make_train_comm(Communicator& comm,
                                                          std::chrono::milliseconds step_timeout) {
  if (step_timeout.count() <= 0)
    return InvalidArgument("train communicator: step timeout must be positive, got " +
                           std::to_string(step_timeout.count()) + " ms");
  return std::unique_ptr<train::TrainComm>(new CommunicatorTrainComm(comm, step_timeout));
}

}  // namespace tandem::collectives
