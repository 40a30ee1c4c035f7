// How a job forms: see handshake.h.
#include "collectives/bootstrap/handshake.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <utility>

namespace tandem::collectives::bootstrap_detail {

Admission::Admission(const BootstrapConfig& config, asio::io_context& io) : cfg_(config), io_(io) {}

Admission::~Admission() { close_pending(); }  // no handler may outlive this object

// Listens, admits world_size - 1 ranks and welcomes them, all by the
// deadline. On success peers() holds rank r's connection at [r] ([0] empty).
Status Admission::run(Deadline deadline) {
  peers_.assign(cfg_.world_size, nullptr);
  auto endpoints = resolve(cfg_.coordinator_host, cfg_.coordinator_port, deadline);
  if (!endpoints.ok()) return fail(endpoints.status());
  const tcp::endpoint ep = endpoints->front();
  error_code ec;
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  const std::string where = cfg_.coordinator_host + ":" + std::to_string(cfg_.coordinator_port);
  if (ec) return fail(Unavailable("cannot listen on " + where + " (" + ec.message() + ")"));
  port_ = acceptor_.local_endpoint(ec).port();
  if (cfg_.on_listening) cfg_.on_listening(port_);

  start_accept();
  const bool formed = run_until(
      io_, [&] { return !failure_.ok() || joined_ == cfg_.world_size; }, deadline);
  if (failure_.ok() && !formed) failure_ = DeadlineExceeded(missing_ranks());
  if (!failure_.ok()) return fail(failure_);
  close_pending();  // the job has formed: nobody else may join

  auto welcome =
      std::make_shared<const std::string>(wire::encode_frame(cfg_.protocol_version, wire::FrameType::kWelcome, {}));
  Status s = write_all(io_, std::vector<ConnPtr>(peers_.begin() + 1, peers_.end()), welcome, deadline);
  return s.ok() ? s : fail(s);
}

uint16_t Admission::port() const { return port_; }

std::vector<ConnPtr>& Admission::peers() { return peers_; }

// Tells every admitted rank why the job failed, then closes everything.
Status Admission::fail(const Status& cause) {
  const Status s = bootstrap_error(cfg_.rank, cause.code(), cause.message());
  const std::string reject = reject_frame(cfg_.protocol_version, s.code(), s.message());
  for (auto& c : peers_) {
    if (!c) continue;
    send_now(*c, reject);
    close_conn(*c);
  }
  close_pending();
  return s;
}

void Admission::close_pending() {
  error_code ec;
  acceptor_.close(ec);
  timer_.cancel();
  for (auto& c : unidentified_) close_conn(*c);
  unidentified_.clear();
  drain(io_);
}

std::string Admission::missing_ranks() {
  std::vector<int> missing;
  for (int r = 1; r < cfg_.world_size; ++r) {
    if (!peers_[r]) missing.push_back(r);
  }
  std::string m = rank_list(missing) + " never arrived (" + std::to_string(joined_) + " of " +
                  std::to_string(cfg_.world_size) + " ranks joined";
  for (const auto& c : unidentified_) dropped_.push_back(c->addr + " connected but sent no HELLO");
  if (!dropped_.empty()) {
    m += "; refused " + std::to_string(dropped_.size()) + " other connection(s): " + dropped_.front();
    if (dropped_.size() > 1) m += "; ...";
  }
  return m + ")";
}

void Admission::start_accept() {
  auto c = std::make_shared<Conn>(io_);
  acceptor_.async_accept(c->sock, [this, c](error_code ec) {
    if (!acceptor_.is_open() || !failure_.ok()) return;
    if (ec) {
      // EMFILE and the like: back off rather than spin until the deadline.
      timer_.expires_after(std::chrono::milliseconds(20));
      timer_.async_wait([this](error_code tec) {
        if (!tec && acceptor_.is_open()) start_accept();
      });
      return;
    }
    c->addr = endpoint_text(c->sock);
    if (unidentified_.size() >= kMaxUnidentified) {
      // A flood of silent connections must not exhaust descriptors, nor lock
      // the ranks out: the oldest goes, not the newcomer. A rank sends its
      // HELLO as soon as it connects, so only a flood faster than that
      // (thousands of connections a second) could still shed one; it is
      // closed without a REJECT, so such a rank reads end of file and
      // reconnects (join_coordinator).
      const ConnPtr oldest = unidentified_.front();
      unidentified_.erase(unidentified_.begin());
      note_dropped(*oldest, "sent no HELLO before " + std::to_string(kMaxUnidentified) + " newer connections");
      close_conn(*oldest);
    }
    set_nodelay(*c);
    unidentified_.push_back(c);
    read_frame(c, wire::kMaxHandshakeBytes,
               [this, c](const Status& st, const wire::FrameHeader& h, std::string p) { on_hello(c, st, h, p); });
    start_accept();
  });
}

// See handshake.h: dropped, or refused (failing the job).
void Admission::on_hello(const ConnPtr& c, const Status& st, const wire::FrameHeader& h,
                         const std::string& payload) {
  if (!failure_.ok() || !c->sock.is_open()) return;
  unidentified_.erase(std::remove(unidentified_.begin(), unidentified_.end(), c), unidentified_.end());
  if (!st.ok()) return drop(c, st.message());
  const bool is_hello = h.type == static_cast<uint16_t>(wire::FrameType::kHello);
  if (h.version != cfg_.protocol_version) {
    auto peer_rank = wire::peek_hello_rank(payload);  // readable in every version
    const std::string who =
        is_hello && peer_rank.ok() ? "rank " + std::to_string(*peer_rank) : "the peer at " + c->addr;
    const std::string theirs = who + " speaks protocol " + std::to_string(h.version);
    const std::string ours = std::to_string(cfg_.protocol_version);
    return refuse(c, FailedPrecondition(theirs + ", this build speaks " + ours),
                  theirs + ", the coordinator speaks " + ours);
  }
  if (Status s = wire::check_type(h); !s.ok()) return drop(c, s.message());
  if (!is_hello) return drop(c, "sent " + std::string(wire::frame_type_name(h.type)) + " before HELLO");
  auto hello = wire::decode_hello(payload);
  if (!hello.ok()) return drop(c, hello.status().message());
  const std::string who = "rank " + std::to_string(hello->rank);
  const std::string world = std::to_string(cfg_.world_size);
  if (hello->job_id != cfg_.job_id) {
    // Dropped, not refused: without the job's id (the launcher puts its
    // secret in it) a peer must not be able to fail the job; this one's own
    // rank still comes. Neither id is echoed.
    return drop(c, who + " belongs to another job (its job id differs from this job's)", StatusCode::kInvalidArgument);
  }
  if (hello->world_size != static_cast<uint32_t>(cfg_.world_size)) {
    return refuse(c, InvalidArgument(who + " expects world size " + std::to_string(hello->world_size) +
                                     ", this job has " + world));
  }
  if (hello->rank == 0 || hello->rank >= static_cast<uint32_t>(cfg_.world_size)) {
    return refuse(c, InvalidArgument(who + " is out of range for a joiner of world size " + world));
  }
  ConnPtr& slot = peers_[hello->rank];
  if (slot) return refuse(c, InvalidArgument(who + " joined twice (from " + slot->addr + " and " + c->addr + ")"));
  c->rank = static_cast<int>(hello->rank);
  slot = c;
  ++joined_;
}

void Admission::note_dropped(const Conn& c, const std::string& why) {
  if (dropped_.size() < kMaxDroppedNotes) dropped_.push_back(c.addr + ": " + why);
}

void Admission::drop(const ConnPtr& c, const std::string& why, StatusCode code) {
  note_dropped(*c, why);
  send_now(*c, reject_frame(cfg_.protocol_version, code, why));
  close_conn(*c);
}

// `reason` is what the refused peer reads; by default the coordinator's own.
void Admission::refuse(const ConnPtr& c, const Status& cause, const std::string& reason) {
  send_now(*c, reject_frame(cfg_.protocol_version, cause.code(), reason.empty() ? cause.message() : reason));
  close_conn(*c);
  failure_ = cause;
}

// A joiner: connects to the coordinator (retrying with backoff while it is
// not up yet), sends HELLO and waits for WELCOME, all by the deadline.
// Returns the connection, or the error already prefixed with this rank.
Result<ConnPtr> join_coordinator(const BootstrapConfig& cfg, asio::io_context& io, Deadline deadline) {
  const std::string who = "coordinator " + cfg.coordinator_host + ":" + std::to_string(cfg.coordinator_port);
  auto error = [&](const Status& s) { return bootstrap_error(cfg.rank, s.code(), s.message()); };
  auto endpoints = resolve(cfg.coordinator_host, cfg.coordinator_port, deadline);
  if (!endpoints.ok()) return error(Status(endpoints.status().code(), who + ": " + endpoints.status().message()));

  struct State {
    std::vector<tcp::endpoint> endpoints;
    std::chrono::milliseconds backoff{10};
    std::string last_error = "no connection attempt finished";
    bool connected = false, hello_done = false, answered = false, give_up = false;
    int attempt_number = 0;  // handlers of an earlier attempt's socket see another and stop
    Status outcome;
    std::function<void()> attempt;
    std::function<void(std::string)> retry;
  };
  State state;
  state.endpoints = std::move(*endpoints);
  auto c = std::make_shared<Conn>(io);
  c->rank = 0;
  c->addr = who;
  asio::steady_timer timer(io);
  const std::string hello =
      wire::encode_frame(cfg.protocol_version, wire::FrameType::kHello,
                         wire::encode_payload(wire::Hello{static_cast<uint32_t>(cfg.rank),
                                                          static_cast<uint32_t>(cfg.world_size), cfg.job_id}));

  State* s = &state;
  // Every exit, an exception's included, aborts what is still pending and
  // runs those handlers, so none outlives the locals they point to.
  struct Cleanup {
    State* s;
    asio::io_context& io;
    asio::steady_timer& timer;
    Conn& c;
    ~Cleanup() {
      s->give_up = true;
      timer.cancel();
      if (!s->answered || !s->outcome.ok()) close_conn(c);
      drain(io);
      s->attempt = nullptr;
      s->retry = nullptr;
    }
  };
  const Cleanup cleanup{s, io, timer, *c};

  auto on_answer = [&cfg, s, who](const Status& rs, const wire::FrameHeader& h, const std::string& p) {
    s->answered = true;
    if (!rs.ok()) {
      s->outcome = Status(rs.code(), who + ": " + rs.message() + " during the handshake");
    } else if (h.type == static_cast<uint16_t>(wire::FrameType::kReject)) {
      // Read whatever its version: that is how a version mismatch is explained.
      auto rej = wire::decode_reject(p);
      s->outcome = rej.ok() ? Status(rej->code, "rejected by " + who + ": " + rej->reason)
                            : Status(rej.status().code(), who + ": " + rej.status().message());
    } else if (h.version != cfg.protocol_version) {
      s->outcome = FailedPrecondition(who + " speaks protocol " + std::to_string(h.version) + ", this build speaks " +
                                      std::to_string(cfg.protocol_version));
    } else if (h.type != static_cast<uint16_t>(wire::FrameType::kWelcome) || h.length != 0) {
      s->outcome = DataLoss(who + " answered HELLO with " + std::string(wire::frame_type_name(h.type)));
    }
  };
  // Refused while rank 0 starts up, or closed before any answer (a
  // coordinator shedding connections it cannot tell from a flood's):
  // again after a backoff, until the deadline.
  s->retry = [s, &timer](std::string why) {
    s->last_error = std::move(why);
    timer.expires_after(s->backoff);
    s->backoff = std::min(s->backoff * 2, std::chrono::milliseconds(500));
    timer.async_wait([s](error_code tec) {
      if (!tec && !s->give_up) s->attempt();
    });
  };
  s->attempt = [s, c, &hello, on_answer] {
    close_conn(*c);
    const int number = ++s->attempt_number;
    s->hello_done = false;
    asio::async_connect(c->sock, s->endpoints, [s, c, &hello, on_answer, number](error_code ec, const tcp::endpoint&) {
      if (s->give_up || number != s->attempt_number || ec == asio::error::operation_aborted) return;
      if (ec) return s->retry(ec.message());
      s->connected = true;
      s->last_error.clear();
      set_nodelay(*c);
      asio::async_write(c->sock, asio::buffer(hello), [s, number](error_code, size_t) {
        if (number == s->attempt_number) s->hello_done = true;
      });
      read_frame(c, wire::kMaxHandshakeBytes,
                 [s, number, on_answer](const Status& rs, const wire::FrameHeader& h, const std::string& p) {
                   if (s->give_up || number != s->attempt_number) return;
                   if (!rs.ok() && rs.code() == StatusCode::kUnavailable) return s->retry(rs.message());
                   on_answer(rs, h, p);
                 });
    });
  };
  s->attempt();
  // A failed HELLO write needs no report of its own: the read then fails too.
  if (!run_until(
          io, [&] { return s->answered && (s->hello_done || !s->outcome.ok()); }, deadline)) {
    return error(DeadlineExceeded(
        s->connected ? who + " did not admit this rank by deadline (are all " + std::to_string(cfg.world_size) +
                           " ranks started?" + (s->last_error.empty() ? "" : "; then: " + s->last_error) + ")"
                     : who + " not reachable by deadline (" + s->last_error + ")"));
  }
  if (!s->outcome.ok()) return error(s->outcome);
  return c;
}

}  // namespace tandem::collectives::bootstrap_detail
