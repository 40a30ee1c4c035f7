// The bootstrap's connection and Asio steps: see channel.h.
#include "collectives/bootstrap/channel.h"

#include <netdb.h>
#include <sys/socket.h>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string_view>
#include <system_error>
#include <thread>
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

// An IP literal resolves at once; a host name goes to getaddrinfo on a
// thread of its own, waited for until the deadline. Not Asio's resolver:
// its getaddrinfo runs on a thread the io_context joins when it is
// destroyed, so a lookup that hangs (a dead DNS server: 5 s a try) held the
// caller past its deadline. A thread left behind at the deadline finishes
// the lookup alone and drops it.
Result<std::vector<tcp::endpoint>> resolve(const std::string& host, uint16_t port, Deadline deadline) {
  error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (!ec) return std::vector<tcp::endpoint>{tcp::endpoint(addr, port)};

  struct Lookup {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    int rc = 0;
    std::vector<tcp::endpoint> endpoints;
  };
  auto lookup = std::make_shared<Lookup>();
  try {
    std::thread([lookup, host, port] {
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* found = nullptr;
      const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
      std::vector<tcp::endpoint> endpoints;
      for (const addrinfo* a = rc == 0 ? found : nullptr; a != nullptr; a = a->ai_next) {
        if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) || a->ai_addrlen > sizeof(sockaddr_storage)) continue;
        tcp::endpoint e;
        std::memcpy(e.data(), a->ai_addr, a->ai_addrlen);
        e.resize(a->ai_addrlen);
        endpoints.push_back(e);
      }
      if (found != nullptr) ::freeaddrinfo(found);
      std::lock_guard lock(lookup->mu);
      lookup->done = true;
      lookup->rc = rc;
      lookup->endpoints = std::move(endpoints);
      lookup->cv.notify_all();
    }).detach();
  } catch (const std::system_error& e) {
    return Unavailable("cannot resolve host '" + host + "': no thread for the lookup (" + e.what() + ")");
  }
  std::unique_lock lock(lookup->mu);
  if (!lookup->cv.wait_until(lock, deadline, [&] { return lookup->done; }))
    return DeadlineExceeded("cannot resolve host '" + host + "' by deadline");
  if (lookup->rc != 0 || lookup->endpoints.empty()) {
    return Unavailable("cannot resolve host '" + host + "' (" +
                       (lookup->rc != 0 ? std::string(::gai_strerror(lookup->rc)) : "no address") + ")");
  }
  return std::move(lookup->endpoints);
}

}  // namespace tandem::collectives::bootstrap_detail
