#include "collectives/ucx/ucx_transport.h"

#include <poll.h>
#include <ucp/api/ucp.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "collectives/ucx/ucx_status.h"
#include "collectives/ucx/ucx_worker.h"

namespace tandem::collectives {
namespace {

// Longest sleep on the event fd: bounds how stale a deadline check can be.
constexpr int kSleepSliceMs = 10;
constexpr size_t kPendingListed = 4;  // transfers named in a deadline message

// One posted transfer. UCX's callbacks write into it, so it must not move
// while UCX holds its request: ops live behind unique_ptr.
struct Op {
  bool send = false;
  int peer = 0;
  uint64_t tag = 0;
  size_t bytes = 0;
  void* request = nullptr;  // UCX's, while it owns one
  bool done = false;
  ucs_status_t status = UCS_OK;
  size_t length = 0;  // received bytes
  bool checked = false;  // wait() has looked at its outcome
};

void on_send(void*, ucs_status_t status, void* user) {
  auto* op = static_cast<Op*>(user);
  op->status = status;
  op->done = true;
}

void on_recv(void*, ucs_status_t status, const ucp_tag_recv_info_t* info, void* user) {
  auto* op = static_cast<Op*>(user);
  op->status = status;
  if (status == UCS_OK && info) op->length = info->length;
  op->done = true;
}

std::string describe(const Op& op) {
  return std::string(op.send ? "send of " : "recv of ") + std::to_string(op.bytes) + " B " +
         (op.send ? "to" : "from") + " peer " + std::to_string(op.peer) + " (tag " + std::to_string(op.tag) + ")";
}

class UcxTransport final : public Transport {
 public:
  UcxTransport(std::unique_ptr<UcxWorker> worker, const UcxOptions& options)
      : w_(std::move(worker)),
        spin_(options.spin),
        // The source rank sits just below bit 63 (which the host algorithms
        // use to tell user messages from collectives), in as few bits as the
        // group needs, with one more bit below it for the transport's own
        // wireup messages. Collective tags stay below bit 48
        // (host_communicator.cc), clear of these up to 2^13 ranks.
        rank_bits_(std::max(1, static_cast<int>(std::bit_width(static_cast<unsigned>(w_->size() - 1))))),
        rank_shift_(63 - rank_bits_),
        internal_bit_(uint64_t{1} << (rank_shift_ - 1)),
        reserved_mask_(((uint64_t{1} << (rank_bits_ + 1)) - 1) << (rank_shift_ - 1)) {}

  ~UcxTransport() override {
    if (broken_.ok() && (!ops_.empty() || aborted_.load()))
      (void)fail(Aborted("ucx: transport destroyed with " + std::to_string(ops_.size()) + " transfers pending"));
  }

  int rank() const override { return w_->rank(); }
  int size() const override { return w_->size(); }
  std::string_view name() const override { return "ucx"; }

  Result<RequestId> post_send(int peer, uint64_t tag, const void* data, size_t bytes) override {
    return post(true, peer, tag, const_cast<void*>(data), bytes, false);
  }
  Result<RequestId> post_recv(int peer, uint64_t tag, void* data, size_t bytes) override {
    return post(false, peer, tag, data, bytes, false);
  }
  Status wait(std::span<const RequestId> requests, Deadline deadline) override;

  void abort(std::string_view reason) override {
    {
      std::lock_guard<std::mutex> lock(abort_mu_);
      if (abort_reason_.empty()) abort_reason_ = reason.empty() ? "aborted" : std::string(reason);
    }
    aborted_.store(true, std::memory_order_release);
    // Wakes a wait() sleeping on the event fd; UCX allows this from any
    // thread, though not against fail() destroying the worker.
    std::lock_guard<std::mutex> lock(abort_mu_);
    if (!w_->worker()) return;
    const ucs_status_t s = ucp_worker_signal(w_->worker());
    if (s != UCS_OK)
      std::fprintf(stderr, "tandem: %s\n", TANDEM_UCS_ERROR(s, "ucx: ucp_worker_signal").message().c_str());
  }

  // One small message each way with every peer: UCX connects lazily, and
  // that should not land inside the first timed collective.
  Status wireup(Deadline deadline);

 private:
  Result<RequestId> post(bool send, int peer, uint64_t tag, void* data, size_t bytes, bool internal);
  Status check_usable();
  Status sleep_on_event_fd(Deadline deadline);
  Status fail(Status cause);
  Status check_finished(const Op& op) const;
  Status pending_error(const std::vector<Op*>& ops) const;

  std::unique_ptr<UcxWorker> w_;
  const std::chrono::microseconds spin_;
  const int rank_bits_;
  const int rank_shift_;
  const uint64_t internal_bit_;
  const uint64_t reserved_mask_;  // the rank field and the internal bit
  std::unordered_map<RequestId, std::unique_ptr<Op>> ops_;
  RequestId next_id_ = 1;
  Status broken_;  // the failure that made this transport unusable
  std::atomic<bool> aborted_{false};
  std::mutex abort_mu_;
  std::string abort_reason_;
};

Status UcxTransport::check_usable() {
  if (!broken_.ok()) {
    // A dropped link stays UNAVAILABLE for every later call; anything else
    // (deadline, abort, bad data) left the group out of step: ABORTED.
    if (broken_.code() == StatusCode::kUnavailable || broken_.code() == StatusCode::kAborted) return broken_;
    return Aborted("ucx: transport unusable after an earlier failure: " + broken_.message());
  }
  if (aborted_.load(std::memory_order_acquire)) {
    std::string reason;
    {
      std::lock_guard<std::mutex> lock(abort_mu_);
      reason = abort_reason_;
    }
    // The communicator's reasons already say "aborted: ..."; say it once.
    return fail(Aborted(reason.starts_with("aborted") ? reason : "aborted: " + reason));
  }
  if (w_->peer_failed()) return fail(w_->peer_failure());
  return Status::Ok();
}

Result<RequestId> UcxTransport::post(bool send, int peer, uint64_t tag, void* data, size_t bytes,
                                     bool internal) {
  TANDEM_RETURN_IF_ERROR(check_usable());
  if (peer < 0 || peer >= size())
    return InvalidArgument("ucx: peer " + std::to_string(peer) + " is not a rank of a group of " +
                           std::to_string(size()));
  if (tag & reserved_mask_)
    return InvalidArgument("ucx: tag " + std::to_string(tag) + " uses bits " + std::to_string(rank_shift_ - 1) +
                           "-62, which carry the source rank in a group of " + std::to_string(size()));
  if (bytes > 0 && data == nullptr) return InvalidArgument("ucx: null buffer for " + std::to_string(bytes) + " B");

  const uint64_t source = static_cast<uint64_t>(send ? rank() : peer);
  const uint64_t ucp_tag = (source << rank_shift_) | (internal ? internal_bit_ : 0) | tag;
  auto op = std::make_unique<Op>();
  op->send = send;
  op->peer = peer;
  op->tag = tag;
  op->bytes = bytes;
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.user_data = op.get();
  ucs_status_ptr_t r;
  if (send) {
    p.cb.send = &on_send;
    r = ucp_tag_send_nbx(w_->ep(peer), data, bytes, ucp_tag, &p);
  } else {
    // Always through a request and the callback: UCX 1.13 leaves recv_info
    // unfilled when a receive completes at once, and the length is needed.
    p.op_attr_mask |= UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    p.cb.recv = &on_recv;
    // Full mask: the source rank, the internal bit and the tag must all match.
    r = ucp_tag_recv_nbx(w_->worker(), data, bytes, ucp_tag, ~uint64_t{0}, &p);
  }
  if (UCS_PTR_IS_ERR(r)) {
    // Earlier posts of the same collective are still in flight with the
    // caller's buffers: fail() cancels them before the caller returns.
    return fail(TANDEM_UCS_ERROR(UCS_PTR_STATUS(r), "peer " + std::to_string(peer) + ": posting " + describe(*op)));
  }
  if (r == nullptr) {
    op->done = true;
    op->length = bytes;  // only a send completes at once
  } else {
    op->request = r;
  }
  const RequestId id = next_id_++;
  ops_.emplace(id, std::move(op));
  return id;
}

Status UcxTransport::wait(std::span<const RequestId> requests, Deadline deadline) {
  TANDEM_RETURN_IF_ERROR(check_usable());
  std::vector<Op*> ops;
  ops.reserve(requests.size());
  for (RequestId id : requests) {
    auto it = ops_.find(id);
    if (it == ops_.end()) return InvalidArgument("ucx: wait on unknown request " + std::to_string(id));
    if (std::find(ops.begin(), ops.end(), it->second.get()) == ops.end()) ops.push_back(it->second.get());
  }
  size_t remaining = ops.size();
  Deadline spin_until = Clock::now() + spin_;
  for (;;) {
    // Each transfer is checked once, when it finishes: a failure or a wrong
    // size ends the wait even while others are still pending.
    for (Op* op : ops) {
      if (!op->done || op->checked) continue;
      op->checked = true;
      --remaining;
      if (Status e = check_finished(*op); !e.ok()) return fail(e);
    }
    if (remaining == 0) break;
    if (aborted_.load(std::memory_order_acquire) || w_->peer_failed()) return check_usable();
    const Deadline now = Clock::now();
    if (now >= deadline) return fail(pending_error(ops));
    if (ucp_worker_progress(w_->worker()) > 0) {
      spin_until = now + spin_;
    } else if (now >= spin_until) {
      TANDEM_RETURN_IF_ERROR(sleep_on_event_fd(deadline));
    }
  }
  for (RequestId id : requests) {
    auto it = ops_.find(id);
    if (it == ops_.end()) continue;  // listed twice
    if (it->second->request) ucp_request_free(it->second->request);
    ops_.erase(it);
  }
  return Status::Ok();
}

Status UcxTransport::check_finished(const Op& op) const {
  if (op.status == UCS_OK) {
    if (op.send || op.length == op.bytes) return Status::Ok();
    return DataLoss("peer " + std::to_string(op.peer) + ": " + describe(op) + ": got a message of " +
                    std::to_string(op.length) + " B");
  }
  if (op.status == UCS_ERR_MESSAGE_TRUNCATED)
    return DataLoss("peer " + std::to_string(op.peer) + ": " + describe(op) +
                    ": the message is larger than the buffer (ucx: message truncated)");
  // The endpoint's failure names the cause better than the request's status.
  if (w_->peer_failed()) return w_->peer_failure();
  return TANDEM_UCS_ERROR(op.status, "peer " + std::to_string(op.peer) + ": " + describe(op));
}

// Sleeps until the worker has an event, abort() signals it, or a slice of
// the deadline passes. UCS_ERR_BUSY from arm means events are already
// waiting: the caller's next progress call takes them.
Status UcxTransport::sleep_on_event_fd(Deadline deadline) {
  const ucs_status_t s = ucp_worker_arm(w_->worker());
  if (s == UCS_ERR_BUSY) return Status::Ok();
  if (s != UCS_OK) return fail(TANDEM_UCS_ERROR(s, "ucx: ucp_worker_arm"));
  pollfd fd{w_->event_fd(), POLLIN, 0};
  const int timeout = static_cast<int>(std::min<int64_t>(remaining_ms(deadline), kSleepSliceMs));
  if (poll(&fd, 1, timeout) < 0 && errno != EINTR)
    return fail(TANDEM_ERRNO("ucx: poll on the worker's event fd"));
  return Status::Ok();
}

Status UcxTransport::pending_error(const std::vector<Op*>& ops) const {
  std::vector<int> peers;
  std::string listed;
  size_t pending = 0;
  for (const Op* op : ops) {
    if (op->done) continue;
    if (std::find(peers.begin(), peers.end(), op->peer) == peers.end()) peers.push_back(op->peer);
    if (pending++ < kPendingListed) listed += (listed.empty() ? "" : ", ") + describe(*op);
  }
  if (pending > kPendingListed) listed += ", ...";
  std::string who;
  for (int p : peers) who += (who.empty() ? "" : ", ") + std::to_string(p);
  return DeadlineExceeded("deadline exceeded waiting on peer" + std::string(peers.size() > 1 ? "s " : " ") + who +
                          ": " + std::to_string(pending) + " of " + std::to_string(ops.size()) +
                          " transfers pending (" + listed + ")");
}

Status UcxTransport::fail(Status cause) {
  if (broken_.ok()) broken_ = cause;
  for (auto& [id, op] : ops_)
    if (!op->done && !op->send && op->request) ucp_request_cancel(w_->worker(), op->request);
  // Sends cannot be cancelled in UCX 1.13; releasing the endpoints completes
  // them (UCS_ERR_CANCELED). Whatever is still unfinished is released with
  // the worker, which is destroyed here rather than progressed again (see
  // UcxWorker::destroy_now), so the caller's buffers are free on return.
  w_->drop_endpoints();
  for (auto& [id, op] : ops_)
    if (op->request) ucp_request_free(op->request);  // no callback follows a free
  ops_.clear();
  {
    std::lock_guard<std::mutex> lock(abort_mu_);
    w_->destroy_now();
  }
  return broken_;
}

Status UcxTransport::wireup(Deadline deadline) {
  const int n = size();
  std::vector<uint64_t> in(static_cast<size_t>(n), ~uint64_t{0});
  const uint64_t me = static_cast<uint64_t>(rank());
  std::vector<RequestId> ids;
  for (int peer = 0; peer < n; ++peer) {
    if (peer == rank()) continue;
    TANDEM_ASSIGN_OR_RETURN(RequestId r, post(false, peer, 0, &in[static_cast<size_t>(peer)], sizeof(uint64_t), true));
    ids.push_back(r);
    TANDEM_ASSIGN_OR_RETURN(RequestId s, post(true, peer, 0, const_cast<uint64_t*>(&me), sizeof me, true));
    ids.push_back(s);
  }
  TANDEM_RETURN_IF_ERROR(wait(ids, deadline));
  for (int peer = 0; peer < n; ++peer)
    if (peer != rank() && in[static_cast<size_t>(peer)] != static_cast<uint64_t>(peer))
      return fail(DataLoss("peer " + std::to_string(peer) + " answered the wireup as rank " +
                           std::to_string(in[static_cast<size_t>(peer)])));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Transport>> make_ucx_transport(Bootstrap& bootstrap, const UcxOptions& options,
                                                      Deadline deadline) {
  auto worker = UcxWorker::create(bootstrap, options, deadline);
  if (!worker.ok()) return worker.status();
  auto transport = std::make_unique<UcxTransport>(std::move(worker).value(), options);
  TANDEM_RETURN_IF_ERROR(transport->wireup(deadline).with_context("ucx: wireup"));
  // Neither side returns before both have finished connecting.
  TANDEM_RETURN_IF_ERROR(bootstrap.barrier(deadline));
  return std::unique_ptr<Transport>(std::move(transport));
}

}  // namespace tandem::collectives
