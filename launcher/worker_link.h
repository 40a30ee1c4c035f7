// The worker's end of the launcher channel (launcher/worker_protocol.h):
// heartbeats out, pings and commands in. A launcher that goes away (end of
// file: its process or the ssh session died) or goes silent for the
// heartbeat timeout (the link was cut) ends this worker and its process
// group at once, so no worker outlives its job on either host.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "launcher/fd_io.h"
#include "runtime/deadline.h"
#include "runtime/status.h"

namespace tandem::launcher {

struct Endpoint {
  std::string host;
  int port = 0;
};

class LauncherLink {
 public:
  // `reader` reads stdin, positioned after the header.
  LauncherLink(std::unique_ptr<LineReader> reader, double heartbeat_interval_s, double heartbeat_timeout_s);
  ~LauncherLink();
  LauncherLink(const LauncherLink&) = delete;
  LauncherLink& operator=(const LauncherLink&) = delete;

  // Log text on stdout, written whole under the lock records use.
  void log(std::string_view text);
  // A record (worker_protocol.h) on stdout.
  void record(std::string_view kind, const std::vector<std::string>& args = {});

  // Rank 0's bootstrap address, once the launcher sends it.
  Result<Endpoint> wait_coordinator(Deadline deadline);
  // Set when the launcher asked this worker to stop (a signal, another rank failed).
  bool stop_requested() const { return stop_.load(); }
  // Waits for the launcher to ask this worker to stop, until `deadline`;
  // whether it asked.
  bool wait_stop(Deadline deadline);
  std::string stop_reason() const;

 private:
  void read_loop();
  void heartbeat_loop();
  [[noreturn]] void lost(const std::string& why);

  std::unique_ptr<LineReader> reader_;
  const std::chrono::milliseconds interval_;
  const std::chrono::milliseconds timeout_;
  std::mutex out_mu_;  // stdout: logs and records
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Endpoint> coordinator_;
  std::string stop_reason_;
  std::atomic<bool> stop_{false};
  bool closing_ = false;
  std::thread reader_thread_;
  std::thread heartbeat_thread_;
};

}  // namespace tandem::launcher
