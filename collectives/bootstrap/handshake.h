// Private to the bootstrap (bootstrap.cc): how a job forms. Rank 0 admits
// (Admission), the other ranks join (join_coordinator). See bootstrap.h for
// the protocol. Defined in handshake.cc; nothing outside
// collectives/bootstrap/ may include it.
//
// The coordinator answers WELCOME only once every rank has arrived, so a
// joiner's connect() returns when the job exists, and when it cannot form
// every rank already admitted gets a REJECT with the coordinator's reason.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "collectives/bootstrap/bootstrap.h"
#include "collectives/bootstrap/channel.h"
#include "collectives/bootstrap/wire.h"

namespace tandem::collectives::bootstrap_detail {

class Admission {
 public:
  // config and io must outlive this object.
  Admission(const BootstrapConfig& config, asio::io_context& io);
  ~Admission();  // closes what is pending: no handler may outlive this object
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

  // Listens, admits world_size - 1 ranks and welcomes them, all by the
  // deadline. On success peers() holds rank r's connection at [r] ([0] empty).
  // On failure every admitted rank gets a REJECT, and the error carries the
  // "rank 0: bootstrap: " prefix.
  Status run(Deadline deadline);

  uint16_t port() const;          // the port listened on, once run() got that far
  std::vector<ConnPtr>& peers();  // by rank, after a successful run()

 private:
  // Tells every admitted rank why the job failed, then closes everything;
  // returns cause prefixed with this rank.
  Status fail(const Status& cause);

  // Closes the acceptor and the connections that sent no HELLO yet, cancels
  // the timer and drains their handlers.
  void close_pending();

  // The DEADLINE_EXCEEDED message: which ranks never arrived, and which other
  // connections were refused.
  std::string missing_ranks();

  // Accepts connections (backing off on errors) and reads each one's HELLO.
  void start_accept();

  // A peer that is no rank of this job (garbage, silence, a broken frame,
  // another job's id) is dropped and admission goes on; a rank of this job
  // whose HELLO disagrees with it is refused and the job fails, since it
  // cannot form without it.
  void on_hello(const ConnPtr& c, const Status& st, const wire::FrameHeader& h, const std::string& payload);

  // Remembers why a connection was turned away, for missing_ranks().
  void note_dropped(const Conn& c, const std::string& why);

  // Sends a REJECT {code, why} and closes; admission goes on.
  void drop(const ConnPtr& c, const std::string& why, StatusCode code = StatusCode::kDataLoss);

  // Sends a REJECT and closes, failing the job with cause.
  // `reason` is what the refused peer reads; by default the coordinator's own.
  void refuse(const ConnPtr& c, const Status& cause, const std::string& reason = {});

  static constexpr size_t kMaxUnidentified = 64;
  static constexpr size_t kMaxDroppedNotes = 8;  // a flood's reasons are not all worth keeping

  const BootstrapConfig& cfg_;
  asio::io_context& io_;
  tcp::acceptor acceptor_{io_};
  asio::steady_timer timer_{io_};
  std::vector<ConnPtr> peers_;
  std::vector<ConnPtr> unidentified_;  // accepted, no HELLO yet
  std::vector<std::string> dropped_;   // why non-tandem connections were refused
  Status failure_;
  int joined_ = 1;
  uint16_t port_ = 0;
};

// A joiner: connects to the coordinator (retrying with backoff while it is
// not up yet), sends HELLO and waits for WELCOME, all by the deadline.
// Returns the connection, or the error already prefixed with this rank.
Result<ConnPtr> join_coordinator(const BootstrapConfig& cfg, asio::io_context& io, Deadline deadline);

}  // namespace tandem::collectives::bootstrap_detail
