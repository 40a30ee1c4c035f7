// Bootstrap: how the ranks of a job find each other before any data moves.
// Rank 0 (the coordinator) listens on a TCP address; the others connect to it
// (Boost.Asio), retrying until their deadline while it starts up.
//
// Wire protocol (versioned; all integers little-endian): every frame is
//   u32 magic 'TNDB' | u16 version | u16 type | u32 payload bytes | payload
// A joining rank sends HELLO {rank, world size, job id}; the coordinator
// checks every field (protocol version, world size, job id, rank in range and
// not taken) and answers WELCOME or REJECT {reason}. Frames above 16 MiB, an
// unknown type or a bad magic end the connection with DATA_LOSS. A peer of
// another job (or none: silence, garbage) is turned away and admission goes
// on, so nothing without the job id can fail the job; one of this job whose
// HELLO disagrees fails it at once. A joiner whose connection is closed
// before any answer connects again until the deadline.
//
// After the handshake the connections stay open as the job's control channel:
// all_gather() exchanges small blobs (UCX worker addresses, the NCCL unique
// id) through the coordinator, and a peer whose connection drops is reported
// by the next call (UNAVAILABLE naming the rank).
//
// Failures name the cause and happen by the deadline: "rank 1: bootstrap:
// coordinator 10.0.0.1:29500 not reachable by deadline (connection refused)",
// "rank 0: bootstrap: rank 1 speaks protocol 2, this build speaks 1",
// "rank 0: bootstrap: rank 1 never arrived (1 of 2 ranks joined)".
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/deadline.h"
#include "runtime/status.h"

namespace tandem::collectives {

inline constexpr uint16_t kBootstrapProtocolVersion = 1;

struct BootstrapConfig {
  int rank = 0;
  int world_size = 1;
  std::string coordinator_host = "127.0.0.1";  // rank 0 binds here (its listen address)
  uint16_t coordinator_port = 29500;           // 0 on rank 0: pick a free port (see port())
  // Ranks of different jobs refuse each other. The launcher makes it
  // "<run id>:<job secret>", so it is never echoed in an error.
  std::string job_id;
  uint16_t protocol_version = kBootstrapProtocolVersion;  // overridable only to test mismatches
  // Rank 0, once it listens: the port, so a launcher that let it pick one
  // (coordinator_port 0) can tell the other ranks before they connect.
  std::function<void(uint16_t port)> on_listening;
};

class Bootstrap {
 public:
  // Rank 0 listens and waits for all others; others connect and complete the
  // handshake; all by the deadline.
  static Result<std::unique_ptr<Bootstrap>> connect(const BootstrapConfig& config, Deadline deadline);
  virtual ~Bootstrap() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The port rank 0 listens on (useful with coordinator_port = 0).
  virtual uint16_t port() const = 0;
  // Every rank contributes a blob (up to 1 MiB); every rank gets all, by rank.
  virtual Result<std::vector<std::string>> all_gather(const std::string& blob, Deadline deadline) = 0;
  virtual Status barrier(Deadline deadline) = 0;
};

}  // namespace tandem::collectives
