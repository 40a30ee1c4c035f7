#include "launcher/lockstep.h"

#include <array>
#include <vector>

namespace tandem::launcher {
namespace {

constexpr int64_t kLockstepVersion = 2;
enum Kind : int64_t { kNoop = 0, kForward = 1, kShutdown = 2 };
using Header = std::array<int64_t, 6>;

}  // namespace

Lockstep::Lockstep(collectives::Communicator& comm, LlamaModel& model, std::chrono::milliseconds step_timeout)
    : comm_(comm), model_(model), step_timeout_(step_timeout) {}

Status Lockstep::announce(int64_t kind, int64_t start_pos, std::span<const int> tokens, ResultKind result, int64_t k) {
  if (comm_.size() == 1) return Status::Ok();
  Header header = {kLockstepVersion, kind, start_pos, static_cast<int64_t>(tokens.size()), result, k};
  const Deadline deadline = deadline_after(step_timeout_);
  TANDEM_RETURN_IF_ERROR(comm_.broadcast(header.data(), header.size(), tandem::DType::kI64, 0, deadline));
  if (tokens.empty()) return Status::Ok();
  std::vector<int32_t> ids(tokens.begin(), tokens.end());
  return comm_.broadcast(ids.data(), ids.size(), tandem::DType::kI32, 0, deadline);
}

// Checked before the announcement: a bad request must fail here, not in every
// rank's forward.
Status Lockstep::check(std::span<const int> tokens, int64_t start_pos) const {
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
  return Status::Ok();
}

Status Lockstep::forward(std::span<const int> tokens, int64_t start_pos, std::span<float> logits) {
  TANDEM_RETURN_IF_ERROR(check(tokens, start_pos));
  TANDEM_RETURN_IF_ERROR(announce(kForward, start_pos, tokens, kLogits));
  return model_.forward(tokens, start_pos, logits);
}

Result<int> Lockstep::forward_argmax(std::span<const int> tokens, int64_t start_pos) {
  TANDEM_RETURN_IF_ERROR(check(tokens, start_pos));
  TANDEM_RETURN_IF_ERROR(announce(kForward, start_pos, tokens, kArgmax));
  return model_.forward_argmax(tokens, start_pos);
}

Status Lockstep::forward_top_k(std::span<const int> tokens, int64_t start_pos, int k,
                               std::vector<TokenLogit>& best) {
  TANDEM_RETURN_IF_ERROR(check(tokens, start_pos));
  if (k < 1 || k > LlamaModel::kMaxTopK) {
    return InvalidArgument("top_k=" + std::to_string(k) + " is outside [1, " + std::to_string(LlamaModel::kMaxTopK) +
                           "]");
  }
  TANDEM_RETURN_IF_ERROR(announce(kForward, start_pos, tokens, kTopK, k));
  return model_.forward_top_k(tokens, start_pos, k, best);
}

Status Lockstep::noop() { return announce(kNoop, 0, {}); }
Status Lockstep::shutdown() { return announce(kShutdown, 0, {}); }

Status Lockstep::follow(const std::function<bool()>& should_stop) {
  std::vector<int32_t> ids;
  std::vector<TokenLogit> best;
  for (;;) {
    if (should_stop()) return Aborted("stopped while following rank 0");
    Header header{};
    const Deadline deadline = deadline_after(step_timeout_);
    Status s = comm_.broadcast(header.data(), header.size(), tandem::DType::kI64, 0, deadline);
    if (!s.ok()) return Status(s.code(), "waiting for rank 0's next command: " + s.message());
    const auto [version, kind, start_pos, n, result, k] = header;
    if (version != kLockstepVersion) {
      return FailedPrecondition("rank 0 speaks lockstep protocol " + std::to_string(version) + ", this rank " +
                                std::to_string(kLockstepVersion));
    }
    if (kind == kShutdown) return Status::Ok();
    if (kind == kNoop) continue;
    if (kind != kForward || n < 1 || n > model_.context() || start_pos < 0 || result < kLogits || result > kTopK ||
        (result == kTopK && (k < 1 || k > LlamaModel::kMaxTopK))) {
      return DataLoss("rank 0 sent a malformed command (kind " + std::to_string(kind) + ", " + std::to_string(n) +
                      " tokens at " + std::to_string(start_pos) + ", result " + std::to_string(result) + ")");
    }
    ids.resize(static_cast<size_t>(n));
    TANDEM_RETURN_IF_ERROR(comm_.broadcast(ids.data(), ids.size(), tandem::DType::kI32, 0, deadline));
    const std::vector<int> tokens(ids.begin(), ids.end());
    // Only rank 0 receives the result; the others take part in making it.
    if (result == kLogits) {
      TANDEM_RETURN_IF_ERROR(model_.forward(tokens, start_pos, {}));
    } else if (result == kArgmax) {
      TANDEM_RETURN_IF_ERROR(model_.forward_argmax(tokens, start_pos).status());
    } else {
      TANDEM_RETURN_IF_ERROR(model_.forward_top_k(tokens, start_pos, static_cast<int>(k), best));
    }
  }
}

}  // namespace tandem::launcher
