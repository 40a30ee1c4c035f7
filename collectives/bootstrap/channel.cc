// The bootstrap's connection and Asio steps: see channel.h.
#include "collectives/bootstrap/channel.h"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <string_view>
#include <utility>

namespace tandem::collectives::bootstrap_detail {

Conn::Conn(asio::io_context& io) : sock(io) {}

Status lost(const error_code& ec) { return Unavailable("connection lost (" + ec.message() + ")"); }

// "rank 3: bootstrap: <m>": the prefix every bootstrap error carries.
Status bootstrap_error(int rank, StatusCode code, const std::string& m) {
  return Status(code, "rank " + std::to_string(rank) + ": bootstrap: " + m);
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

std::string reject_frame(uint16_t version, StatusCode code, std::string reason) {
  return wire::encode_frame(version, wire::FrameType::kReject,
                            wire::encode_payload(wire::Reject{code, std::move(reason)}));
}

// Runs handlers until done() or the deadline; false at the deadline.
bool run_until(asio::io_context& io, const std::function<bool()>& done, Deadline deadline) {
  io.restart();
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    if (io.run_one_until(deadline) == 0 && io.stopped()) {
      // Out of work yet not done: the caller never started the operation.
      TANDEM_CHECK_MSG(done(), "bootstrap: io_context ran out of work");
    }
  }
  return true;
}

// After closing sockets and cancelling timers: runs the aborted operations'
// handlers (which see the error and start nothing new) so that none outlives
// the state it points to. Never blocks.
void drain(asio::io_context& io) noexcept {
  try {
    io.restart();
    io.poll();
  } catch (...) {  // NOLINT: already failing; a handler's bad_alloc adds nothing
  }
}

void close_conn(Conn& c) {
  error_code ec;
  c.sock.shutdown(tcp::socket::shutdown_both, ec);  // the peer reads EOF now
  c.sock.close(ec);
}

void set_nodelay(Conn& c) {
  error_code ec;  // a failure only costs latency
  c.sock.set_option(tcp::no_delay(true), ec);
}

std::string endpoint_text(const tcp::socket& s) {
  error_code ec;
  const auto ep = s.remote_endpoint(ec);
  if (ec) return "an unknown peer";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// Best effort, never blocks: used to tell a peer why it is being dropped just
// before closing. Frames sent this way are small and fit the socket buffer;
// Asio sends with MSG_NOSIGNAL, so a dead peer costs no SIGPIPE.
void send_now(Conn& c, const std::string& frame) {
  if (!c.sock.is_open()) return;
  error_code ec;
  c.sock.non_blocking(true, ec);
  if (!ec) asio::write(c.sock, asio::buffer(frame), ec);
}

// Reads one frame (header, then a payload of at most max_payload bytes).
// Handlers see an error, never start anything, once the socket is closed.
void read_frame(const ConnPtr& c, uint32_t max_payload, FrameCallback done) {
  asio::async_read(c->sock, asio::buffer(c->header), [c, max_payload, done = std::move(done)](error_code ec, size_t) {
    if (ec) return done(lost(ec), {}, {});
    auto h = wire::decode_header(std::string_view(c->header.data(), c->header.size()));
    if (!h.ok()) return done(h.status(), {}, {});
    if (h->length > max_payload) {
      return done(DataLoss("bootstrap frame: " + std::string(wire::frame_type_name(h->type)) + " payload of " +
                           std::to_string(h->length) + " bytes exceeds the " + std::to_string(max_payload) +
                           " bytes allowed here"),
                  *h, {});
    }
    c->payload.assign(h->length, '\0');
    asio::async_read(c->sock, asio::buffer(c->payload), [c, header = *h, done](error_code ec2, size_t) {
      if (ec2) return done(lost(ec2), header, {});
      done(Status::Ok(), header, std::move(c->payload));
    });
  });
}

// Writes one frame to every connection; UNAVAILABLE "peer R: connection lost"
// for the first that fails, DEADLINE_EXCEEDED when they do not take it in time.
Status write_all(asio::io_context& io, const std::vector<ConnPtr>& to,
                 const std::shared_ptr<const std::string>& frame, Deadline deadline) {
  struct State {
    size_t left = 0;
    Status failure;
  };
  auto st = std::make_shared<State>();
  st->left = to.size();
  for (const auto& c : to) {
    asio::async_write(c->sock, asio::buffer(*frame), [c, frame, st](error_code ec, size_t) {
      if (!ec) {
        --st->left;
      } else if (st->failure.ok()) {
        st->failure = Unavailable("peer " + std::to_string(c->rank) + ": " + lost(ec).message());
      }
    });
  }
  if (!run_until(
          io, [&] { return !st->failure.ok() || st->left == 0; }, deadline)) {
    return DeadlineExceeded("peers did not take " + std::to_string(frame->size()) + " bytes by deadline");
  }
  return st->failure;
}

// An IP literal resolves at once; a host name goes through the resolver
// (Asio runs getaddrinfo on a helper thread) and is abandoned at the deadline.
Result<std::vector<tcp::endpoint>> resolve(asio::io_context& io, const std::string& host, uint16_t port,
                                           Deadline deadline) {
  error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (!ec) return std::vector<tcp::endpoint>{tcp::endpoint(addr, port)};

  struct State {
    bool done = false;
    error_code ec;
    std::vector<tcp::endpoint> endpoints;
  };
  auto st = std::make_shared<State>();
  tcp::resolver resolver(io);
  resolver.async_resolve(host, std::to_string(port), [st](error_code rec, const tcp::resolver::results_type& r) {
    st->done = true;
    st->ec = rec;
    for (const auto& e : r) st->endpoints.push_back(e.endpoint());
  });
  if (!run_until(
          io, [&] { return st->done; }, deadline)) {
    resolver.cancel();
    return DeadlineExceeded("cannot resolve host '" + host + "' by deadline");
  }
  if (st->ec || st->endpoints.empty()) {
    return Unavailable("cannot resolve host '" + host + "' (" + (st->ec ? st->ec.message() : "no address") + ")");
  }
  return std::move(st->endpoints);
}

}  // namespace tandem::collectives::bootstrap_detail
