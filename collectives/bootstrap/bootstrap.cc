// Bootstrap over Boost.Asio. Each Bootstrap owns its io_context and runs it
// only inside its own calls, on the calling thread, until the call's work is
// done or its deadline passes: no background thread, no locks, and several
// Bootstraps can live in one process (tests run ranks as threads).
//
// After a failed call the object is broken for good: an all_gather that timed
// out or lost a peer has left the ranks out of step, so every later call
// returns the same error. On failure rank 0 also sends a REJECT carrying its
// error to every peer still connected, so they fail at once with the cause
// instead of waiting out their own deadlines.
#include "collectives/bootstrap/bootstrap.h"

#include <exception>
#include <utility>

#include "collectives/bootstrap/channel.h"
#include "collectives/bootstrap/handshake.h"
#include "collectives/bootstrap/wire.h"

namespace tandem::collectives {
namespace {

using namespace bootstrap_detail;  // NOLINT: the module's own helpers

class TcpBootstrap final : public Bootstrap {
 public:
  explicit TcpBootstrap(const BootstrapConfig& config)
      : cfg_(config), coordinator_(cfg_.coordinator_host + ":" + std::to_string(cfg_.coordinator_port)) {}
  ~TcpBootstrap() override {
    for (auto& c : peers_) {
      if (c) close_conn(*c);  // FIN, not blocking: the peers' next call reports the loss
    }
  }

  Status start(Deadline deadline) {
    if (cfg_.rank != 0) {
      auto c = join_coordinator(cfg_, io_, deadline);
      if (!c.ok()) return sticky_ = c.status();
      peers_ = {std::move(c).value()};
      port_ = cfg_.coordinator_port;
      return Status::Ok();
    }
    if (cfg_.world_size == 1) return Status::Ok();  // nobody to wait for: no port taken
    Admission admission(cfg_, io_);
    Status s = admission.run(deadline);
    port_ = admission.port();
    if (!s.ok()) return sticky_ = s;
    peers_ = std::move(admission.peers());
    return s;
  }

  int rank() const override { return cfg_.rank; }
  int size() const override { return cfg_.world_size; }
  uint16_t port() const override { return port_; }

  Result<std::vector<std::string>> all_gather(const std::string& blob, Deadline deadline) override {
    return guarded("all_gather", [&] { return gather(blob, deadline, "all_gather"); });
  }
  Status barrier(Deadline deadline) override {
    return guarded("barrier", [&] { return gather({}, deadline, "barrier"); }).status();
  }

  // Boost and std may throw (bad_alloc, system_error); nothing may escape.
  template <typename F>
  auto guarded(std::string_view what, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const std::exception& e) {
      return fail(error(StatusCode::kInternal, std::string(what) + ": unexpected exception: " + e.what()));
    }
  }

 private:
  Status error(StatusCode code, const std::string& m) const { return bootstrap_error(cfg_.rank, code, m); }

  Status fail(Status s) {
    if (sticky_.ok()) sticky_ = s;
    const std::string reject = reject_frame(cfg_.protocol_version, s.code(), s.message());
    for (auto& c : peers_) {
      if (!c) continue;
      if (cfg_.rank == 0) send_now(*c, reject);
      close_conn(*c);
    }
    drain(io_);
    return s;
  }

  Result<std::vector<std::string>> gather(const std::string& blob, Deadline deadline, const std::string& op) {
    if (!sticky_.ok()) return sticky_;
    if (blob.size() > wire::kMaxBlobBytes) {
      return error(StatusCode::kInvalidArgument,
                   op + ": blob of " + std::to_string(blob.size()) + " bytes exceeds the 1 MiB limit");
    }
    const uint64_t round = round_++;
    if (cfg_.world_size == 1) return std::vector<std::string>{blob};
    return cfg_.rank == 0 ? gather_root(blob, round, deadline, op) : gather_leaf(blob, round, deadline, op);
  }

  Result<std::vector<std::string>> gather_root(const std::string& blob, uint64_t round, Deadline deadline,
                                               const std::string& op);
  Result<std::vector<std::string>> gather_leaf(const std::string& blob, uint64_t round, Deadline deadline,
                                               const std::string& op);
  Status check_frame(const Conn& c, const Status& st, const wire::FrameHeader& h, const std::string& payload,
                     wire::FrameType want) const;

  static constexpr uint32_t kMaxGatherPayload = 8 + 4 + wire::kMaxBlobBytes;

  BootstrapConfig cfg_;
  std::string coordinator_;     // "host:port" as configured, for messages
  asio::io_context io_;         // declared before every socket: destroyed after them
  std::vector<ConnPtr> peers_;  // rank 0: by rank ([0] empty); others: [0] = the coordinator
  uint16_t port_ = 0;
  uint64_t round_ = 0;  // all_gather calls so far, sent along to catch ranks out of step
  Status sticky_;
};

// Rank 0 takes one GATHER from every peer, then sends all blobs to all.
Result<std::vector<std::string>> TcpBootstrap::gather_root(const std::string& blob, uint64_t round, Deadline deadline,
                                                           const std::string& op) {
  struct State {
    std::vector<std::string> blobs;
    std::vector<bool> got;
    int missing = 0;
    Status failure;
  };
  const int n = cfg_.world_size;
  auto g = std::make_shared<State>();
  g->blobs.resize(n);
  g->blobs[0] = blob;
  g->got.assign(n, false);
  g->got[0] = true;
  g->missing = n - 1;
  for (int r = 1; r < n; ++r) {
    read_frame(peers_[r], kMaxGatherPayload,
               [this, g, r, round](const Status& st, const wire::FrameHeader& h, std::string p) {
                 if (!g->failure.ok()) return;
                 const std::string who = "peer " + std::to_string(r);
                 Status s = check_frame(*peers_[r], st, h, p, wire::FrameType::kGather);
                 if (s.ok()) {
                   auto m = wire::decode_gather(p);
                   if (!m.ok()) {
                     s = Status(m.status().code(), who + ": " + m.status().message());
                   } else if (m->round != round) {
                     s = DataLoss(who + " is at all_gather #" + std::to_string(m->round) + ", this rank at #" +
                                  std::to_string(round));
                   } else {
                     g->blobs[r] = std::move(m->blob);
                   }
                 }
                 if (!s.ok()) {
                   g->failure = error(s.code(), s.message());
                   return;
                 }
                 g->got[r] = true;
                 --g->missing;
               });
  }
  if (!run_until(
          io_, [&] { return !g->failure.ok() || g->missing == 0; }, deadline)) {
    std::vector<int> missing;
    for (int r = 1; r < n; ++r) {
      if (!g->got[r]) missing.push_back(r);
    }
    return fail(error(StatusCode::kDeadlineExceeded, op + ": nothing from " + rank_list(missing) + " by deadline"));
  }
  if (!g->failure.ok()) return fail(g->failure);
  std::string payload = wire::encode_payload(wire::Gathered{round, g->blobs});
  if (payload.size() > wire::kMaxPayloadBytes) {
    return fail(error(StatusCode::kResourceExhausted, op + ": " + std::to_string(n) + " blobs take " +
                                                          std::to_string(payload.size()) +
                                                          " bytes, above the 16 MiB frame limit"));
  }
  auto frame = std::make_shared<const std::string>(
      wire::encode_frame(cfg_.protocol_version, wire::FrameType::kGathered, payload));
  Status s = write_all(io_, std::vector<ConnPtr>(peers_.begin() + 1, peers_.end()), frame, deadline);
  if (!s.ok()) return fail(error(s.code(), (s.code() == StatusCode::kDeadlineExceeded ? op + ": " : "") + s.message()));
  return std::move(g->blobs);
}

// A joiner sends its GATHER and waits for the coordinator's GATHERED.
Result<std::vector<std::string>> TcpBootstrap::gather_leaf(const std::string& blob, uint64_t round, Deadline deadline,
                                                           const std::string& op) {
  struct State {
    bool write_done = false;
    error_code write_error;
    bool got = false;
    Status failure;
    std::vector<std::string> blobs;
  };
  auto g = std::make_shared<State>();
  const ConnPtr c = peers_[0];
  auto frame = std::make_shared<const std::string>(wire::encode_frame(cfg_.protocol_version, wire::FrameType::kGather,
                                                                      wire::encode_payload(wire::Gather{round, blob})));
  // A failed write is not the story: the read then fails too, or first
  // delivers the REJECT in which the coordinator said why it hung up.
  asio::async_write(c->sock, asio::buffer(*frame), [g, frame](error_code ec, size_t) {
    g->write_done = true;
    g->write_error = ec;
  });
  read_frame(c, wire::kMaxPayloadBytes,
             [this, g, c, round, &blob](const Status& st, const wire::FrameHeader& h, std::string p) {
               Status s = check_frame(*c, st, h, p, wire::FrameType::kGathered);
               if (s.ok()) {
                 auto m = wire::decode_gathered(p);
                 if (!m.ok()) {
                   s = Status(m.status().code(), "peer 0: " + m.status().message());
                 } else if (m->round != round || m->blobs.size() != static_cast<size_t>(cfg_.world_size) ||
                            m->blobs[cfg_.rank] != blob) {
                   s = DataLoss("peer 0: GATHERED for all_gather #" + std::to_string(m->round) + " with " +
                                std::to_string(m->blobs.size()) + " blobs does not answer this rank's #" +
                                std::to_string(round) + " of " + std::to_string(cfg_.world_size));
                 } else {
                   g->blobs = std::move(m->blobs);
                 }
               }
               if (!s.ok()) g->failure = error(s.code(), s.message());
               g->got = true;
             });
  if (!run_until(
          io_, [&] { return g->got && g->write_done; }, deadline)) {
    return fail(error(StatusCode::kDeadlineExceeded, op + ": " +
                                                         (g->write_done ? "no answer from" : "could not send to") +
                                                         " coordinator " + coordinator_ + " by deadline"));
  }
  if (!g->failure.ok()) return fail(g->failure);
  if (g->write_error) return fail(error(StatusCode::kUnavailable, "peer 0: " + lost(g->write_error).message()));
  return std::move(g->blobs);
}

// After the handshake a peer may send only the expected frame of this build's
// version; a REJECT from the coordinator carries its error.
Status TcpBootstrap::check_frame(const Conn& c, const Status& st, const wire::FrameHeader& h,
                                 const std::string& payload, wire::FrameType want) const {
  const std::string who = "peer " + std::to_string(c.rank);
  if (!st.ok()) return Status(st.code(), who + ": " + st.message());
  if (cfg_.rank != 0 && h.type == static_cast<uint16_t>(wire::FrameType::kReject)) {
    auto rej = wire::decode_reject(payload);
    if (!rej.ok()) return Status(rej.status().code(), who + ": " + rej.status().message());
    return Status(rej->code, who + " (the coordinator) gave up: " + rej->reason);
  }
  if (h.version != cfg_.protocol_version) {
    return DataLoss(who + ": frame of protocol " + std::to_string(h.version) + ", this build speaks " +
                    std::to_string(cfg_.protocol_version));
  }
  if (Status s = wire::check_type(h); !s.ok()) return Status(s.code(), who + ": " + s.message());
  if (h.type != static_cast<uint16_t>(want)) {
    return DataLoss(who + ": sent " + std::string(wire::frame_type_name(h.type)) + ", expected " +
                    std::string(wire::frame_type_name(static_cast<uint16_t>(want))));
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Bootstrap>> Bootstrap::connect(const BootstrapConfig& config, Deadline deadline) {
  const std::string where = "rank " + std::to_string(config.rank) + ": bootstrap: ";
  if (config.world_size < 1 || static_cast<uint32_t>(config.world_size) > wire::kMaxWorldSize) {
    return InvalidArgument(where + "world size " + std::to_string(config.world_size) + " outside [1, " +
                           std::to_string(wire::kMaxWorldSize) + "]");
  }
  if (config.rank < 0 || config.rank >= config.world_size) {
    return InvalidArgument(where + "rank out of range for world size " + std::to_string(config.world_size));
  }
  if (config.job_id.size() > wire::kMaxJobIdBytes) {
    return InvalidArgument(where + "job id longer than " + std::to_string(wire::kMaxJobIdBytes) + " bytes");
  }
  if (config.coordinator_host.empty()) return InvalidArgument(where + "no coordinator host");
  if (config.rank != 0 && config.coordinator_port == 0) {
    return InvalidArgument(where + "coordinator port 0: only rank 0 may pick an ephemeral port");
  }
  try {
    auto b = std::make_unique<TcpBootstrap>(config);
    Status s = b->guarded("connect", [&] { return b->start(deadline); });
    if (!s.ok()) return s;
    return std::unique_ptr<Bootstrap>(std::move(b));
  } catch (const std::exception& e) {
    return Internal(where + "connect: unexpected exception: " + e.what());
  }
}

}  // namespace tandem::collectives
