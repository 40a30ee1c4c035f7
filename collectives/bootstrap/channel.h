// Private to the bootstrap (bootstrap.cc, handshake.cc): a TCP connection
// carrying frames, and the Asio steps the bootstrap repeats (run to a
// deadline, read one frame, write to many, best-effort send, close, resolve).
// Defined in channel.cc; nothing outside collectives/bootstrap/ may include it.
//
// Handlers only ever run inside run_until/drain, on the thread that called
// the Bootstrap, so they share state without locks.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "collectives/bootstrap/wire.h"
#include "runtime/deadline.h"
#include "runtime/status.h"

namespace tandem::collectives::bootstrap_detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

struct Conn {
  explicit Conn(asio::io_context& io);  // an unopened socket on io
  tcp::socket sock;
  int rank = -1;     // -1 until a valid HELLO names it
  std::string addr;  // "ip:port" of the other end, for messages
  std::array<char, wire::kHeaderBytes> header{};
  std::string payload;
};
using ConnPtr = std::shared_ptr<Conn>;

// (status, header, payload): status is UNAVAILABLE for a dropped connection,
// DATA_LOSS for a malformed header.
using FrameCallback = std::function<void(const Status&, const wire::FrameHeader&, std::string)>;

// UNAVAILABLE "connection lost (<ec's message>)".
Status lost(const error_code& ec);

// "rank 3: bootstrap: <m>": the prefix every bootstrap error carries.
Status bootstrap_error(int rank, StatusCode code, const std::string& m);

// "rank 3" or "ranks 1, 2, 5", for messages.
std::string rank_list(const std::vector<int>& ranks);

// An encoded REJECT frame {code, reason} of the given protocol version.
std::string reject_frame(uint16_t version, StatusCode code, std::string reason);

// Runs handlers until done() or the deadline; false at the deadline.
bool run_until(asio::io_context& io, const std::function<bool()>& done, Deadline deadline);

// After closing sockets and cancelling timers: runs the aborted operations'
// handlers (which see the error and start nothing new) so that none outlives
// the state it points to. Never blocks.
void drain(asio::io_context& io) noexcept;

// Shuts the socket down both ways (the peer reads EOF now) and closes it;
// errors are ignored.
void close_conn(Conn& c);

// Disables Nagle on the socket; a failure only costs latency.
void set_nodelay(Conn& c);

// "ip:port" of the socket's remote end, or "an unknown peer".
std::string endpoint_text(const tcp::socket& s);

// Best effort, never blocks: used to tell a peer why it is being dropped just
// before closing. Frames sent this way are small and fit the socket buffer;
// Asio sends with MSG_NOSIGNAL, so a dead peer costs no SIGPIPE.
void send_now(Conn& c, const std::string& frame);

// Reads one frame (header, then a payload of at most max_payload bytes).
// Handlers see an error, never start anything, once the socket is closed.
void read_frame(const ConnPtr& c, uint32_t max_payload, FrameCallback done);

// Writes one frame to every connection; UNAVAILABLE "peer R: connection lost"
// for the first that fails, DEADLINE_EXCEEDED when they do not take it in time.
Status write_all(asio::io_context& io, const std::vector<ConnPtr>& to,
                 const std::shared_ptr<const std::string>& frame, Deadline deadline);

// An IP literal resolves at once; a host name through getaddrinfo on a
// thread of its own, abandoned at the deadline (it may finish later, alone).
Result<std::vector<tcp::endpoint>> resolve(const std::string& host, uint16_t port, Deadline deadline);

}  // namespace tandem::collectives::bootstrap_detail
