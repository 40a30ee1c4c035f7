#include "collectives/host/host_communicator.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "collectives/host/reduce.h"
#include "runtime/hash.h"

namespace tandem::collectives {
namespace {

// Transport tags are 64-bit. Bit 63 set: a user send/recv (low 32 bits are the
// caller's tag), so user messages can never match a collective's. Bit 63
// clear: a collective, (sequence << 24) | (shape << 8) | phase, below bit 48
// (a transport may keep the bits above for itself: UCX's source rank). Every
// collective call takes the next sequence number on every rank (calls are
// made in the same order), so consecutive collectives never cross-match, and
// a rank calling a different collective than its peers waits for a tag
// nobody sends and fails by its deadline instead of reducing the wrong data.
// `shape` is 16 bits of a hash of the call's count, dtype, reduce op and
// root: ranks that call the same collective with different counts would
// otherwise match the chunks they share, and one could return OK holding
// part of the wrong data.
constexpr uint64_t kUserTagBit = uint64_t{1} << 63;
// 16.7M calls before the sequence wraps, harmlessly: only one collective is
// ever in flight between the ranks.
constexpr uint64_t kSeqMask = (uint64_t{1} << 24) - 1;

// 16 bits of a hash of what every rank must agree on in one call.
uint64_t call_shape(std::initializer_list<uint64_t> fields) {
  uint64_t h = 0;
  for (uint64_t f : fields) h = splitmix64(h ^ f);
  return h & 0xFFFF;
}
enum Phase : uint64_t { kSmall = 1, kRingRS, kRingAG, kReduceScatter, kAllGather, kBroadcast, kBarrier };

// Recv chunks in flight per reducing ring pass: the next chunk arrives into
// one slot while the current one is reduced out of the other.
constexpr size_t kSlots = 2;
constexpr size_t kNone = ~size_t{0};

// Ring blocks. all_reduce cuts count elements into n blocks as evenly as
// possible: base = count / n each, the first count % n blocks one more. For
// all_gather / reduce_scatter the blocks are the caller's: base = count.
struct Blocks {
  size_t base, extra;
  size_t off(int b) const { return base * static_cast<size_t>(b) + std::min(static_cast<size_t>(b), extra); }
  size_t len(int b) const { return base + (static_cast<size_t>(b) < extra ? 1 : 0); }
};

// One pass of n-1 ring steps: at step s this rank sends block first_block - s
// to the right and receives block first_block - s - 1 from the left. The block
// received at step s is the one sent at step s + 1, so each chunk is forwarded
// as soon as it has landed (and been reduced): chunks pipeline across steps.
struct RingPass {
  Blocks blocks;
  int first_block;
  const char* first;  // step 0's block is read from here (block offsets)
  char* buf;          // received blocks land / are reduced here (block offsets)
  bool shared;        // reduce_scatter: every block is reduced into buf itself
  const char* own;    // reduce: this rank's contribution; nullptr: all-gather
};

struct Unit {
  int step, block;
  size_t off, len;  // elements, within the block
};

class HostCommunicator final : public Communicator {
 public:
  HostCommunicator(std::unique_ptr<Transport> transport, HostCommunicatorOptions options)
      : transport_(std::move(transport)),
        options_(options),
        rank_(transport_->rank()),
        n_(transport_->size()) {}

  int rank() const override { return rank_; }
  int size() const override { return n_; }
  std::string backend_name() const override { return std::string(transport_->name()); }

  Status all_reduce(const void* send, void* recv, size_t count, DType dtype, ReduceOp op,
                    Deadline deadline) override {
    constexpr std::string_view kOp = "all_reduce";
    TANDEM_RETURN_IF_ERROR(enter(kOp, count, dtype, 1, {send, recv}, &op));
    const uint64_t tag = next_tag(call_shape({1, count, static_cast<uint64_t>(dtype), static_cast<uint64_t>(op)}));
    const size_t bytes = count * dtype_size(dtype);
    if (count == 0) return Status::Ok();
    if (n_ == 1) {
      if (send != recv) std::memcpy(recv, send, bytes);
      return Status::Ok();
    }
    if (bytes <= options_.small_bytes)
      return finish(kOp, small_all_reduce(send, recv, count, dtype, op, tag | kSmall, deadline));
    const Blocks blocks{count / static_cast<size_t>(n_), count % static_cast<size_t>(n_)};
    const auto* in = static_cast<const char*>(send);
    auto* out = static_cast<char*>(recv);
    Status s = ring_pass({blocks, rank_ - 1, in, out, false, in}, tag | kRingRS, dtype, op, deadline);
    // After the reduce-scatter this rank holds block `rank_` reduced.
    if (s.ok()) s = ring_pass({blocks, rank_, out, out, false, nullptr}, tag | kRingAG, dtype, op, deadline);
    return finish(kOp, std::move(s));
  }

  Status all_gather(const void* send, void* recv, size_t count, DType dtype, Deadline deadline) override {
    constexpr std::string_view kOp = "all_gather";
    TANDEM_RETURN_IF_ERROR(enter(kOp, count, dtype, static_cast<size_t>(n_), {send, recv}, nullptr));
    const uint64_t tag = next_tag(call_shape({2, count, static_cast<uint64_t>(dtype)}));
    if (count == 0) return Status::Ok();
    const size_t bytes = count * dtype_size(dtype);
    auto* out = static_cast<char*>(recv);
    char* mine = out + static_cast<size_t>(rank_) * bytes;
    if (send != mine) std::memcpy(mine, send, bytes);
    if (n_ == 1) return Status::Ok();
    return finish(kOp, ring_pass({{count, 0}, rank_, out, out, false, nullptr}, tag | kAllGather, dtype,
                                 ReduceOp::kSum, deadline));
  }

  Status reduce_scatter(const void* send, void* recv, size_t count, DType dtype, ReduceOp op,
                        Deadline deadline) override {
    constexpr std::string_view kOp = "reduce_scatter";
    TANDEM_RETURN_IF_ERROR(enter(kOp, count, dtype, static_cast<size_t>(n_), {send, recv}, &op));
    const uint64_t tag = next_tag(call_shape({3, count, static_cast<uint64_t>(dtype), static_cast<uint64_t>(op)}));
    if (count == 0) return Status::Ok();
    if (n_ == 1) {
      std::memcpy(recv, send, count * dtype_size(dtype));
      return Status::Ok();
    }
    // recv (one block long) stages every partial block on its way round: no
    // n-block scratch, at the price of waiting for a chunk's forward send
    // before the next step overwrites it.
    const auto* in = static_cast<const char*>(send);
    return finish(kOp, ring_pass({{count, 0}, rank_ - 1, in, static_cast<char*>(recv), true, in},
                                 tag | kReduceScatter, dtype, op, deadline));
  }

  Status broadcast(void* buffer, size_t count, DType dtype, int root, Deadline deadline) override {
    constexpr std::string_view kOp = "broadcast";
    TANDEM_RETURN_IF_ERROR(enter(kOp, count, dtype, 1, {buffer}, nullptr));
    if (root < 0 || root >= n_)
      return InvalidArgument("root " + std::to_string(root) + " out of range [0, " + std::to_string(n_) + ")")
          .with_context(context(kOp));
    const uint64_t tag =
        next_tag(call_shape({4, count, static_cast<uint64_t>(dtype), static_cast<uint64_t>(root)}));
    if (count == 0 || n_ == 1) return Status::Ok();
    return finish(kOp, chain_broadcast(static_cast<char*>(buffer), count, dtype_size(dtype), root,
                                       tag | kBroadcast, deadline));
  }

  Status send(const void* buffer, size_t bytes, int peer, uint32_t tag, Deadline deadline) override {
    return point_to_point("send", const_cast<void*>(buffer), bytes, peer, tag, deadline, true);
  }
  Status recv(void* buffer, size_t bytes, int peer, uint32_t tag, Deadline deadline) override {
    return point_to_point("recv", buffer, bytes, peer, tag, deadline, false);
  }

  Status barrier(Deadline deadline) override {
    constexpr std::string_view kOp = "barrier";
    TANDEM_RETURN_IF_ERROR(enter(kOp, 0, DType::kF32, 1, {}, nullptr));
    const uint64_t tag = next_tag(call_shape({5})) | kBarrier;
    // One round of empty messages with every peer: no rank leaves before all
    // have arrived, in one latency rather than n-1.
    reqs_.clear();
    Status s;
    for (int p = 0; p < n_ && s.ok(); ++p)
      if (p != rank_) s = post(false, p, tag, nullptr, 0, reqs_);
    for (int p = 0; p < n_ && s.ok(); ++p)
      if (p != rank_) s = post(true, p, tag, nullptr, 0, reqs_);
    if (s.ok()) s = transport_->wait(reqs_, deadline);
    return finish(kOp, std::move(s));
  }

  void abort(std::string_view reason) override { record_abort(std::string(reason)); }

 private:
  std::string context(std::string_view op) const {
    return "rank " + std::to_string(rank_) + ": " + std::string(op);
  }

  void record_abort(std::string reason) {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_) return;  // the first reason wins
    aborted_ = true;
    abort_reason_ = std::move(reason);
    transport_->abort(abort_reason_);  // wakes a wait in progress on the driving thread
  }

  // Refuses calls on an aborted communicator and validates arguments. Invalid
  // arguments do not abort: nothing was sent, so the group is still in step.
  Status enter(std::string_view op, size_t count, DType dtype, size_t blocks,
               std::initializer_list<const void*> buffers, const ReduceOp* rop) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (aborted_) return Aborted("aborted: " + abort_reason_).with_context(context(op));
    }
    auto invalid = [&](std::string m) { return InvalidArgument(std::move(m)).with_context(context(op)); };
    if (!reducible(dtype))
      return invalid("dtype " + std::string(dtype_name(dtype)) + " not supported (f32, f16, bf16, i32, i64)");
    if (rop && *rop != ReduceOp::kSum && *rop != ReduceOp::kMax && *rop != ReduceOp::kMin)
      return invalid("unknown reduce op");
    const size_t es = dtype_size(dtype);
    if (count > SIZE_MAX / es / blocks) return invalid("count " + std::to_string(count) + " overflows");
    for (const void* b : buffers) {
      if (count > 0 && b == nullptr) return invalid("null buffer");
      if (reinterpret_cast<uintptr_t>(b) % es != 0) return invalid("buffer not aligned to its dtype");
    }
    return Status::Ok();
  }

  // A failed collective leaves the peers mid-algorithm: abort, so every later
  // call fails at once rather than mismatching.
  Status finish(std::string_view op, Status s) {
    if (s.ok()) return s;
    if (s.code() == StatusCode::kDeadlineExceeded)  // a mismatched call looks like a missing peer
      s = DeadlineExceeded(s.message() + " (a peer late, dead, or calling " + std::string(op) +
                           " with another count, dtype, op or root)");
    record_abort(std::string(op) + " failed: " + s.to_string());
    return s.with_context(context(op));
  }

  uint64_t next_tag(uint64_t shape) { return ((++seq_ & kSeqMask) << 24) | (shape << 8); }
  size_t chunk_elems(size_t es) const { return std::max<size_t>(1, options_.chunk_bytes / es); }
  char* scratch(size_t bytes) {
    if (scratch_.size() < bytes) scratch_.resize(bytes);  // grows once, then reused
    return scratch_.data();
  }

  Status post(bool is_send, int peer, uint64_t tag, const void* data, size_t bytes,
              std::vector<RequestId>& ids) {
    Result<RequestId> id = is_send ? transport_->post_send(peer, tag, data, bytes)
                                   : transport_->post_recv(peer, tag, const_cast<void*>(data), bytes);
    if (!id.ok()) return id.status();
    ids.push_back(*id);
    return Status::Ok();
  }
  Status wait_one(RequestId id, Deadline deadline) { return transport_->wait({&id, 1}, deadline); }

  Status point_to_point(std::string_view op, void* buffer, size_t bytes, int peer, uint32_t tag,
                        Deadline deadline, bool is_send) {
    TANDEM_RETURN_IF_ERROR(enter(op, 0, DType::kF32, 1, {}, nullptr));
    if (peer < 0 || peer >= n_ || peer == rank_)
      return InvalidArgument("peer " + std::to_string(peer) + " is not another rank of " + std::to_string(n_))
          .with_context(context(op));
    if (buffer == nullptr && bytes > 0) return InvalidArgument("null buffer").with_context(context(op));
    reqs_.clear();
    Status s = post(is_send, peer, kUserTagBit | tag, buffer, bytes, reqs_);
    if (s.ok()) s = transport_->wait(reqs_, deadline);
    return finish(op, std::move(s));
  }

  // Every rank sends its whole buffer to every other and reduces the n
  // buffers in rank order, so all ranks compute bitwise the same result.
  Status small_all_reduce(const void* send, void* recv, size_t count, DType dtype, ReduceOp op, uint64_t tag,
                          Deadline deadline) {
    const size_t bytes = count * dtype_size(dtype);
    char* slots = scratch(static_cast<size_t>(n_) * bytes);
    const char* own = static_cast<const char*>(send);
    if (send == recv) {  // recv is overwritten by rank 0's data before ours is used
      own = slots + static_cast<size_t>(rank_) * bytes;
      std::memcpy(slots + static_cast<size_t>(rank_) * bytes, send, bytes);
    }
    reqs_.clear();
    auto slot = [&](int p) { return p == rank_ ? own : slots + static_cast<size_t>(p) * bytes; };
    for (int p = 0; p < n_; ++p)
      if (p != rank_) TANDEM_RETURN_IF_ERROR(post(false, p, tag, slot(p), bytes, reqs_));
    for (int p = 0; p < n_; ++p)
      if (p != rank_) TANDEM_RETURN_IF_ERROR(post(true, p, tag, own, bytes, reqs_));
    TANDEM_RETURN_IF_ERROR(transport_->wait(reqs_, deadline));
    if (slot(0) != recv) std::memcpy(recv, slot(0), bytes);
    for (int p = 1; p < n_; ++p) reduce_into(recv, slot(p), count, dtype, op);
    return Status::Ok();
  }

  Status ring_pass(const RingPass& p, uint64_t tag, DType dtype, ReduceOp op, Deadline deadline) {
    const int right = (rank_ + 1) % n_, left = (rank_ + n_ - 1) % n_;
    const size_t es = dtype_size(dtype), ce = chunk_elems(es);
    auto block = [this](int b) { return ((b % n_) + n_) % n_; };
    units_.clear();
    for (int s = 0; s + 1 < n_; ++s) {
      const int b = block(p.first_block - s - 1);
      for (size_t off = 0; off < p.blocks.len(b); off += ce)
        units_.push_back({s, b, off, std::min(ce, p.blocks.len(b) - off)});
    }
    sends_.clear();
    const int b0 = block(p.first_block);
    for (size_t off = 0; off < p.blocks.len(b0); off += ce)
      TANDEM_RETURN_IF_ERROR(post(true, right, tag, p.first + (p.blocks.off(b0) + off) * es,
                                  std::min(ce, p.blocks.len(b0) - off) * es, sends_));
    // Only a reducing pass needs scratch slots; an all-gather lands chunks in
    // place, so all its recvs are posted at once.
    const size_t n_units = units_.size(), window = p.own ? kSlots : std::max<size_t>(n_units, 1);
    const size_t slot_bytes = std::min(ce, p.blocks.base + (p.blocks.extra > 0 ? 1 : 0)) * es;
    char* slots = p.own ? scratch(kSlots * slot_bytes) : nullptr;
    auto dst = [&](const Unit& u) { return p.buf + ((p.shared ? 0 : p.blocks.off(u.block)) + u.off) * es; };
    auto land = [&](size_t i) { return p.own ? slots + (i % window) * slot_bytes : dst(units_[i]); };
    recvs_.clear();
    for (size_t i = 0; i < std::min(window, n_units); ++i)
      TANDEM_RETURN_IF_ERROR(post(false, left, tag, land(i), units_[i].len * es, recvs_));
    if (p.shared) forward_.assign(p.blocks.base / ce + 1, kNone);
    for (size_t i = 0; i < n_units; ++i) {
      const Unit& u = units_[i];
      TANDEM_RETURN_IF_ERROR(wait_one(recvs_[i], deadline));
      char* to = dst(u);
      if (p.own) {
        if (p.shared && forward_[u.off / ce] != kNone) {  // buf's chunk still being sent on
          RequestId& sent = sends_[forward_[u.off / ce]];
          TANDEM_RETURN_IF_ERROR(wait_one(sent, deadline));
          sent = 0;
        }
        const char* own = p.own + (p.blocks.off(u.block) + u.off) * es;
        if (own == to) {
          reduce_into(to, land(i), u.len, dtype, op);
        } else {
          reduce_to(to, own, land(i), u.len, dtype, op);
        }
      }
      if (u.step + 2 < n_) {
        if (p.shared) forward_[u.off / ce] = sends_.size();
        TANDEM_RETURN_IF_ERROR(post(true, right, tag, to, u.len * es, sends_));
      }
      if (i + window < n_units)
        TANDEM_RETURN_IF_ERROR(post(false, left, tag, land(i + window), units_[i + window].len * es, recvs_));
    }
    std::erase(sends_, RequestId{0});
    return transport_->wait(sends_, deadline);
  }

  // A chain from the root round the ring; each rank forwards chunk k as soon
  // as it has it, so the pipeline costs one chunk's latency per hop.
  Status chain_broadcast(char* buf, size_t count, size_t es, int root, uint64_t tag, Deadline deadline) {
    const int pos = (rank_ - root + n_) % n_, right = (rank_ + 1) % n_, left = (rank_ + n_ - 1) % n_;
    const size_t ce = chunk_elems(es);
    recvs_.clear();
    sends_.clear();
    for (size_t off = 0; pos > 0 && off < count; off += ce)
      TANDEM_RETURN_IF_ERROR(post(false, left, tag, buf + off * es, std::min(ce, count - off) * es, recvs_));
    for (size_t k = 0, off = 0; off < count; ++k, off += ce) {
      if (pos > 0) TANDEM_RETURN_IF_ERROR(wait_one(recvs_[k], deadline));
      const size_t bytes = std::min(ce, count - off) * es;
      if (pos + 1 < n_) TANDEM_RETURN_IF_ERROR(post(true, right, tag, buf + off * es, bytes, sends_));
    }
    return transport_->wait(sends_, deadline);
  }

  const std::unique_ptr<Transport> transport_;
  const HostCommunicatorOptions options_;
  const int rank_, n_;
  uint64_t seq_ = 0;
  // Reused across calls: after first-time growth a call allocates nothing.
  std::vector<char> scratch_;
  std::vector<Unit> units_;
  std::vector<RequestId> reqs_, sends_, recvs_;
  std::vector<size_t> forward_;

  std::mutex mu_;  // guards the abort state: abort() comes from any thread
  bool aborted_ = false;
  std::string abort_reason_;
};

}  // namespace

std::unique_ptr<Communicator> make_host_communicator(std::unique_ptr<Transport> transport,
                                                     HostCommunicatorOptions options) {
  TANDEM_CHECK(transport != nullptr);
  return std::make_unique<HostCommunicator>(std::move(transport), options);
}

}  // namespace tandem::collectives
