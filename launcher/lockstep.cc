#include "launcher/lockstep.h"

#include <array>
#include <vector>

namespace tandem::launcher {
namespace {

constexpr int64_t kLockstepVersion = 1;
enum Kind : int64_t { kNoop = 0, kForward = 1, kShutdown = 2 };

}  // namespace

Lockstep::Lockstep(collectives::Communicator& comm, LlamaModel& model, std::chrono::milliseconds step_timeout)
    : comm_(comm), model_(model), step_timeout_(step_timeout) {}

Status Lockstep::announce(int64_t kind, int64_t start_pos, std::span<const int> tokens) {
  if (comm_.size() == 1) return Status::Ok();
  std::array<int64_t, 4> header = {kLockstepVersion, kind, start_pos, static_cast<int64_t>(tokens.size())};
  const Deadline deadline = deadline_after(step_timeout_);
  TANDEM_RETURN_IF_ERROR(comm_.broadcast(header.data(), header.size(), tandem::DType::kI64, 0, deadline));
  if (tokens.empty()) return Status::Ok();
  std::vector<int32_t> ids(tokens.begin(), tokens.end());
  return comm_.broadcast(ids.data(), ids.size(), tandem::DType::kI32, 0, deadline);
}

Status Lockstep::forward(std::span<const int> tokens, int64_t start_pos, std::span<float> logits) {
  // Checked before the announcement: a bad request must fail here, not in
  // every rank's forward.
  const int64_t vocab = model_.config().vocab_size;
  for (const int t : tokens) {
    if (t < 0 || t >= vocab) {
      return InvalidArgument("token id " + std::to_string(t) + " is outside the vocabulary 0.." +
                             std::to_string(vocab - 1));
    }
  }
  if (tokens.empty() || start_pos < 0 || start_pos + static_cast<int64_t>(tokens.size()) > model_.context()) {
    return OutOfRange(std::to_string(tokens.size()) + " tokens at position " + std::to_string(start_pos) +
                      " do not fit the context of " + std::to_string(model_.context()));
  }
  TANDEM_RETURN_IF_ERROR(announce(kForward, start_pos, tokens));
  return model_.forward(tokens, start_pos, logits);
}

Status Lockstep::noop() { return announce(kNoop, 0, {}); }
Status Lockstep::shutdown() { return announce(kShutdown, 0, {}); }

Status Lockstep::follow(const std::function<bool()>& should_stop) {
  std::vector<float> logits(model_.config().vocab_size);
  std::vector<int32_t> ids;
  for (;;) {
    if (should_stop()) return Aborted("stopped while following rank 0");
    std::array<int64_t, 4> header{};
    const Deadline deadline = deadline_after(step_timeout_);
    Status s = comm_.broadcast(header.data(), header.size(), tandem::DType::kI64, 0, deadline);
    if (!s.ok()) return Status(s.code(), "waiting for rank 0's next command: " + s.message());
    const auto [version, kind, start_pos, n] = header;
    if (version != kLockstepVersion) {
      return FailedPrecondition("rank 0 speaks lockstep protocol " + std::to_string(version) + ", this rank " +
                                std::to_string(kLockstepVersion));
    }
    if (kind == kShutdown) return Status::Ok();
    if (kind == kNoop) continue;
    if (kind != kForward || n < 1 || n > model_.context() || start_pos < 0) {
      return DataLoss("rank 0 sent a malformed command (kind " + std::to_string(kind) + ", " + std::to_string(n) +
                      " tokens at " + std::to_string(start_pos) + ")");
    }
    ids.resize(static_cast<size_t>(n));
    TANDEM_RETURN_IF_ERROR(comm_.broadcast(ids.data(), ids.size(), tandem::DType::kI32, 0, deadline));
    const std::vector<int> tokens(ids.begin(), ids.end());
    TANDEM_RETURN_IF_ERROR(model_.forward(tokens, start_pos, logits));
  }
}

}  // namespace tandem::launcher
