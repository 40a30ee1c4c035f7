#include "collectives/local/local_transport.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "collectives/collectives.h"

namespace tandem::collectives {

namespace {

struct Op {
  bool is_send;
  int owner, peer;
  uint64_t tag;
  const void* src;  // send
  void* dst;        // recv
  size_t bytes;
  bool done = false;
  Status status;
};
using OpPtr = std::shared_ptr<Op>;

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

// One mutex guards the whole group: it is a test transport, and one lock makes
// matching, cancellation and fault injection trivially atomic.
class LocalHub {
 public:
  explicit LocalHub(int size) : ranks(static_cast<size_t>(size)) {}
  int size() const { return static_cast<int>(ranks.size()); }

  struct RankState {
    std::condition_variable cv;
    bool taken = false, dead = false;
    Status broken;  // sticky: abort, own death, or a link found broken
  };
  using Key = std::tuple<int, int, uint64_t>;  // (src, dst, tag)

  std::mutex mu;
  std::vector<RankState> ranks;
  std::map<Key, std::deque<OpPtr>> sends, recvs;  // unmatched, in posting order

  static Key key(const Op& op) {
    return op.is_send ? Key{op.owner, op.peer, op.tag} : Key{op.peer, op.owner, op.tag};
  }

  void complete(Op& op, Status s) {
    op.done = true;
    op.status = std::move(s);
    ranks[static_cast<size_t>(op.owner)].cv.notify_all();
  }

  void break_rank(int r, const Status& s) {
    Status& b = ranks[static_cast<size_t>(r)].broken;
    if (b.ok()) b = s;  // first cause wins
    ranks[static_cast<size_t>(r)].cv.notify_all();
  }

  // Posts `op`, matching it against the oldest opposite op with its key.
  void post(const OpPtr& op) {
    auto& theirs = op->is_send ? recvs : sends;
    auto it = theirs.find(key(*op));
    if (it == theirs.end()) {
      (op->is_send ? sends : recvs)[key(*op)].push_back(op);
      return;
    }
    OpPtr other = it->second.front();
    it->second.pop_front();
    if (it->second.empty()) theirs.erase(it);  // tags grow with every collective: keep the map small
    Op& s = op->is_send ? *op : *other;
    Op& r = op->is_send ? *other : *op;
    if (s.bytes != r.bytes) {
      complete(r, DataLoss("peer " + std::to_string(s.owner) + ": message of " + std::to_string(s.bytes) +
                           " bytes for a " + std::to_string(r.bytes) + "-byte receive (tag " + hex(s.tag) +
                           ")"));
    } else {
      if (s.bytes > 0) std::memcpy(r.dst, s.src, s.bytes);
      complete(r, Status::Ok());
    }
    complete(s, Status::Ok());
  }

  // Takes a pending op out of its queue so no later match touches its buffer.
  void cancel(Op& op, Status why) {
    if (op.done) return;
    auto& q = op.is_send ? sends : recvs;
    auto it = q.find(key(op));
    if (it != q.end()) {
      std::erase_if(it->second, [&](const OpPtr& p) { return p.get() == &op; });
      if (it->second.empty()) q.erase(it);
    }
    complete(op, std::move(why));
  }

  // Fails every pending op for which `verdict` returns an error.
  template <typename F>
  void fail_pending(F verdict) {
    for (auto* q : {&sends, &recvs}) {
      for (auto it = q->begin(); it != q->end();) {
        std::erase_if(it->second, [&](const OpPtr& op) {
          Status s = verdict(*op);
          if (s.ok()) return false;
          complete(*op, s);
          return true;
        });
        it = it->second.empty() ? q->erase(it) : std::next(it);
      }
    }
  }

  void kill(int r) {
    std::lock_guard<std::mutex> lock(mu);
    if (ranks[static_cast<size_t>(r)].dead) return;
    ranks[static_cast<size_t>(r)].dead = true;
    const Status gone = Unavailable("peer " + std::to_string(r) + ": gone");
    break_rank(r, Aborted("rank " + std::to_string(r) + " killed (fault injection)"));
    fail_pending([&](const Op& op) {
      if (op.owner == r) return ranks[static_cast<size_t>(r)].broken;
      if (op.peer != r) return Status::Ok();
      break_rank(op.owner, gone);  // this rank's link to r is broken
      return gone;
    });
  }
};

namespace {

class LocalTransport final : public Transport {
 public:
  LocalTransport(std::shared_ptr<LocalHub> hub, int rank) : hub_(std::move(hub)), rank_(rank) {}
  ~LocalTransport() override { hub_->kill(rank_); }  // as a process exit would

  int rank() const override { return rank_; }
  int size() const override { return hub_->size(); }
  std::string_view name() const override { return "local"; }

  Result<RequestId> post_send(int peer, uint64_t tag, const void* data, size_t bytes) override {
    return post(true, peer, tag, const_cast<void*>(data), bytes);
  }
  Result<RequestId> post_recv(int peer, uint64_t tag, void* data, size_t bytes) override {
    return post(false, peer, tag, data, bytes);
  }

  Status wait(std::span<const RequestId> requests, Deadline deadline) override {
    std::unique_lock<std::mutex> lock(hub_->mu);
    std::vector<OpPtr> ops;
    ops.reserve(requests.size());
    for (RequestId id : requests) {
      auto it = ops_.find(id);
      if (it == ops_.end()) return InvalidArgument("wait: unknown request " + std::to_string(id));
      ops.push_back(it->second);
    }
    auto& me = hub_->ranks[static_cast<size_t>(rank_)];
    for (;;) {
      Status fail = me.broken;
      bool all_done = true;
      for (const OpPtr& op : ops) {
        if (fail.ok() && op->done && !op->status.ok()) fail = op->status;
        all_done = all_done && op->done;
      }
      if (fail.ok() && !all_done && Clock::now() >= deadline) fail = DeadlineExceeded(describe_pending(ops));
      if (!fail.ok() || all_done) {
        for (const OpPtr& op : ops) hub_->cancel(*op, Aborted("cancelled"));
        for (RequestId id : requests) ops_.erase(id);
        return fail;
      }
      me.cv.wait_until(lock, deadline);
    }
  }

  void abort(std::string_view reason) override {
    std::lock_guard<std::mutex> lock(hub_->mu);
    hub_->break_rank(rank_, Aborted("aborted: " + std::string(reason)));
    const Status why = hub_->ranks[static_cast<size_t>(rank_)].broken;
    hub_->fail_pending([&](const Op& op) { return op.owner == rank_ ? why : Status::Ok(); });
  }

 private:
  Result<RequestId> post(bool is_send, int peer, uint64_t tag, void* data, size_t bytes) {
    std::lock_guard<std::mutex> lock(hub_->mu);
    if (peer < 0 || peer >= hub_->size())
      return InvalidArgument("peer " + std::to_string(peer) + " out of range [0, " +
                             std::to_string(hub_->size()) + ")");
    if (data == nullptr && bytes > 0)
      return InvalidArgument("null buffer of " + std::to_string(bytes) + " bytes");
    auto& me = hub_->ranks[static_cast<size_t>(rank_)];
    if (!me.broken.ok()) return me.broken;
    if (hub_->ranks[static_cast<size_t>(peer)].dead) {
      hub_->break_rank(rank_, Unavailable("peer " + std::to_string(peer) + ": gone"));
      return me.broken;
    }
    auto op = std::make_shared<Op>(Op{is_send, rank_, peer, tag, data, data, bytes, false, Status()});
    hub_->post(op);
    const RequestId id = next_id_++;
    ops_.emplace(id, std::move(op));
    return id;
  }

  static std::string describe_pending(const std::vector<OpPtr>& ops) {
    std::string m = "deadline exceeded; pending:";
    int listed = 0, more = 0;
    for (const OpPtr& op : ops) {
      if (op->done) continue;
      if (listed++ == 4) { ++more; continue; }
      m += listed > 1 ? ", " : " ";
      m += op->is_send ? "send to peer " : "recv from peer ";
      m += std::to_string(op->peer) + " (tag " + hex(op->tag) + ")";
    }
    if (more > 0) m += " and " + std::to_string(more) + " more";
    return m;
  }

  std::shared_ptr<LocalHub> hub_;
  const int rank_;
  RequestId next_id_ = 1;
  std::unordered_map<RequestId, OpPtr> ops_;  // guarded by hub_->mu
};

}  // namespace

LocalGroup::LocalGroup(int size) : hub_(std::make_shared<LocalHub>(size)) { TANDEM_CHECK(size >= 1); }

int LocalGroup::size() const { return hub_->size(); }

std::unique_ptr<Transport> LocalGroup::transport(int rank) {
  TANDEM_CHECK(rank >= 0 && rank < size());
  {
    std::lock_guard<std::mutex> lock(hub_->mu);
    TANDEM_CHECK_MSG(!hub_->ranks[static_cast<size_t>(rank)].taken, "a rank's transport is taken twice");
    hub_->ranks[static_cast<size_t>(rank)].taken = true;
  }
  return std::make_unique<LocalTransport>(hub_, rank);
}

void LocalGroup::kill(int rank) {
  TANDEM_CHECK(rank >= 0 && rank < size());
  hub_->kill(rank);
}

// Declared in collectives.h; defined here so the factory in collectives.cc
// does not depend on the local backend.
std::vector<std::unique_ptr<Communicator>> make_local_group(int size, HostCommunicatorOptions options) {
  std::vector<std::unique_ptr<Communicator>> comms;
  if (size < 1) return comms;
  LocalGroup group(size);
  for (int r = 0; r < size; ++r) comms.push_back(make_host_communicator(group.transport(r), options));
  return comms;
}

}  // namespace tandem::collectives
