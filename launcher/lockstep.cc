#include "launcher/lockstep.h"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

namespace tandem::launcher {
namespace {

// 3: the batched forward (kForwardBatch).
constexpr int64_t kLockstepVersion = 3;
enum Kind : int64_t { kNoop = 0, kForward = 1, kShutdown = 2, kForwardBatch = 3 };
constexpr int64_t kSequenceFields = 4;  // {tokens, start_pos, want_logits, table_length}
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
  if (tokens.empty() || start_pos < 0 || start_pos > model_.context() - static_cast<int64_t>(tokens.size())) {
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

Status Lockstep::announce_batch(std::span<const SequenceStep> sequences, ResultKind result) {
  if (comm_.size() == 1) return Status::Ok();
  std::vector<int64_t> fields;
  std::vector<int32_t> tokens, tables;
  // Only the blocks the sequence's positions reach travel: the model reads no others.
  const int64_t block_size = model_.paged_kv().block_size;
  for (const SequenceStep& seq : sequences) {
    const int64_t n = static_cast<int64_t>(seq.tokens.size());
    const int64_t blocks = kv_blocks_for(seq.start_pos + n, block_size);
    fields.insert(fields.end(), {n, seq.start_pos, seq.want_logits ? 1 : 0, blocks});
    tokens.insert(tokens.end(), seq.tokens.begin(), seq.tokens.end());
    tables.insert(tables.end(), seq.block_table.begin(), seq.block_table.begin() + blocks);
  }
  Header header = {kLockstepVersion, kForwardBatch, static_cast<int64_t>(sequences.size()),
                   static_cast<int64_t>(tokens.size()), result, static_cast<int64_t>(tables.size())};
  const Deadline deadline = deadline_after(step_timeout_);
  TANDEM_RETURN_IF_ERROR(comm_.broadcast(header.data(), header.size(), tandem::DType::kI64, 0, deadline));
  TANDEM_RETURN_IF_ERROR(comm_.broadcast(fields.data(), fields.size(), tandem::DType::kI64, 0, deadline));
  TANDEM_RETURN_IF_ERROR(comm_.broadcast(tokens.data(), tokens.size(), tandem::DType::kI32, 0, deadline));
  return comm_.broadcast(tables.data(), tables.size(), tandem::DType::kI32, 0, deadline);
}

// The model checks the step, and the span its result goes to, before it is
// announced: a bad step fails on rank 0 alone, where failing in the forward
// would leave the followers waiting in their exchanges until the deadline.
Status Lockstep::forward_batch(std::span<const SequenceStep> sequences, std::span<float> logits) {
  int64_t wanted = 0;
  TANDEM_RETURN_IF_ERROR(model_.check_batch(sequences, &wanted));
  TANDEM_RETURN_IF_ERROR(model_.check_logits_room(wanted, logits.size()));
  TANDEM_RETURN_IF_ERROR(announce_batch(sequences, kLogits));
  return model_.forward_batch(sequences, logits);
}

Status Lockstep::forward_batch_argmax(std::span<const SequenceStep> sequences, std::span<int32_t> tokens) {
  int64_t wanted = 0;
  TANDEM_RETURN_IF_ERROR(model_.check_batch(sequences, &wanted));
  TANDEM_RETURN_IF_ERROR(model_.check_token_room(wanted, tokens.size()));
  TANDEM_RETURN_IF_ERROR(announce_batch(sequences, kArgmax));
  return model_.forward_batch_argmax(sequences, tokens);
}

Status Lockstep::follow_batch(int64_t n_sequences, int64_t n_tokens, int64_t result, int64_t n_entries,
                              Deadline deadline) {
  const int64_t max_batch = model_.max_batch(), context = model_.context();
  const PagedKvConfig paged = model_.paged_kv();
  auto malformed = [&](const std::string& what) {
    return DataLoss("rank 0 sent a malformed batch command (" + std::to_string(n_sequences) + " sequences, " +
                    std::to_string(n_tokens) + " tokens, " + std::to_string(n_entries) + " block ids): " + what);
  };
  // Every count bounded before anything is sized by it.
  if (paged.num_blocks == 0) return malformed("this rank's model has no paged KV pool");
  if (n_sequences < 1 || n_sequences > max_batch) return malformed("sequences outside [1, max_batch]");
  // Only now that n_sequences is bounded: the product cannot overflow.
  const int64_t max_entries = n_sequences * kv_blocks_for(context, std::max<int64_t>(paged.block_size, 1));
  if (n_tokens < n_sequences || n_tokens > max_batch) return malformed("tokens outside [sequences, max_batch]");
  if (n_entries < n_sequences || n_entries > max_entries) return malformed("block ids outside the tables' bounds");
  if (result != kLogits && result != kArgmax) return malformed("result " + std::to_string(result));
  std::vector<int64_t> fields(static_cast<size_t>(n_sequences * kSequenceFields));
  TANDEM_RETURN_IF_ERROR(comm_.broadcast(fields.data(), fields.size(), tandem::DType::kI64, 0, deadline));
  int64_t token_sum = 0, entry_sum = 0;
  for (int64_t i = 0; i < n_sequences; ++i) {
    const int64_t* f = &fields[i * kSequenceFields];
    const int64_t n = f[0], start = f[1], want = f[2], blocks = f[3];
    if (n < 1 || n > max_batch || start < 0 || start > context - n || (want != 0 && want != 1) ||
        blocks != kv_blocks_for(start + n, paged.block_size))
      return malformed("sequence " + std::to_string(i) + " is " + std::to_string(n) + " tokens at " +
                       std::to_string(start) + " in " + std::to_string(blocks) + " blocks");
    token_sum += n;
    entry_sum += blocks;
  }
  if (token_sum != n_tokens || entry_sum != n_entries) return malformed("the sequences do not add up to the header");
  std::vector<int32_t> tokens(static_cast<size_t>(n_tokens)), tables(static_cast<size_t>(n_entries));
  TANDEM_RETURN_IF_ERROR(comm_.broadcast(tokens.data(), tokens.size(), tandem::DType::kI32, 0, deadline));
  TANDEM_RETURN_IF_ERROR(comm_.broadcast(tables.data(), tables.size(), tandem::DType::kI32, 0, deadline));
  for (const int32_t block : tables)
    if (block < 0 || block >= paged.num_blocks) return malformed("block id " + std::to_string(block) + " outside the pool");
  std::vector<SequenceStep> steps;
  steps.reserve(static_cast<size_t>(n_sequences));
  const int* token = tokens.data();
  const int32_t* table = tables.data();
  for (int64_t i = 0; i < n_sequences; ++i) {
    const int64_t* f = &fields[i * kSequenceFields];
    const size_t n = static_cast<size_t>(f[0]), blocks = static_cast<size_t>(f[3]);
    steps.push_back(SequenceStep{{token, n}, f[1], {table, blocks}, f[2] == 1});
    token += n;
    table += blocks;
  }
  // The model checks the rest (token ids, blocks shared) before it runs.
  if (result == kLogits) return model_.forward_batch(steps, {});
  return model_.forward_batch_argmax(steps, {});
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
    // The header may have come at the end of a long idle wait: the rest of
    // the command gets a whole step_timeout of its own.
    const Deadline payload_deadline = deadline_after(step_timeout_);
    if (kind == kForwardBatch) {
      TANDEM_RETURN_IF_ERROR(follow_batch(start_pos, n, result, k, payload_deadline));
      continue;
    }
    // start_pos > context - n, not start_pos + n > context: the sum of a
    // hostile start_pos and n wraps and would pass every later check.
    if (kind != kForward || n < 1 || n > model_.context() || start_pos < 0 || start_pos > model_.context() - n ||
        result < kLogits || result > kTopK ||
        (result == kTopK && (k < 1 || k > LlamaModel::kMaxTopK))) {
      return DataLoss("rank 0 sent a malformed command (kind " + std::to_string(kind) + ", " + std::to_string(n) +
                      " tokens at " + std::to_string(start_pos) + ", result " + std::to_string(result) + ")");
    }
    ids.resize(static_cast<size_t>(n));
    TANDEM_RETURN_IF_ERROR(comm_.broadcast(ids.data(), ids.size(), tandem::DType::kI32, 0, payload_deadline));
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
