#include "launcher/worker_link.h"

#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>

#include "launcher/worker_protocol.h"
#include "runtime/deadline.h"

namespace tandem::launcher {
namespace {

// How often the reader wakes to check for shutdown and staleness.
constexpr std::chrono::milliseconds kReaderTick{100};

}  // namespace

LauncherLink::LauncherLink(std::unique_ptr<LineReader> reader, double heartbeat_interval_s,
                           double heartbeat_timeout_s)
    : reader_(std::move(reader)),
      interval_(seconds_to_ms(heartbeat_interval_s)),
      timeout_(seconds_to_ms(heartbeat_timeout_s)) {
  reader_thread_ = std::thread([this] { read_loop(); });
  heartbeat_thread_ = std::thread([this] { heartbeat_loop(); });
}

LauncherLink::~LauncherLink() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  reader_thread_.join();
  heartbeat_thread_.join();
}

void LauncherLink::log(std::string_view text) {
  std::lock_guard lock(out_mu_);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void LauncherLink::record(std::string_view kind, const std::vector<std::string>& args) {
  log(encode_record(kind, args));
}

std::string LauncherLink::stop_reason() const {
  std::lock_guard lock(mu_);
  return stop_reason_;
}

bool LauncherLink::wait_stop(Deadline deadline) {
  std::unique_lock lock(mu_);
  return cv_.wait_until(lock, deadline, [&] { return stop_.load(); });
}

Result<Endpoint> LauncherLink::wait_coordinator(Deadline deadline) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_until(lock, deadline, [&] { return coordinator_.has_value() || stop_.load(); })) {
    return DeadlineExceeded("the launcher never said where rank 0's bootstrap listens");
  }
  if (!coordinator_) return Aborted("stopped by the launcher: " + stop_reason_);
  return *coordinator_;
}

void LauncherLink::lost(const std::string& why) {
  std::fprintf(stderr, "tandem worker: lost the launcher (%s): exiting\n", why.c_str());
  std::fflush(stderr);
  // Leading our process group (setsid by the launcher or sshd), we take
  // anything we started with us.
  if (::getpgrp() == ::getpid()) ::kill(0, SIGKILL);
  ::_exit(75);
}

void LauncherLink::read_loop() {
  Clock::time_point last_ping = Clock::now();
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (closing_) return;
    }
    auto line = reader_->read_line(Clock::now() + kReaderTick);
    if (!line.ok()) {
      if (line.status().code() != StatusCode::kDeadlineExceeded) lost(line.status().message());
      if (Clock::now() - last_ping > timeout_) {
        char why[64];
        std::snprintf(why, sizeof why, "no heartbeat for %.1f s", timeout_.count() / 1000.0);
        lost(why);
      }
      continue;
    }
    last_ping = Clock::now();
    const std::string_view l = *line;
    if (l == "ping") continue;
    std::lock_guard lock(mu_);
    if (l.starts_with("stop")) {
      stop_reason_ = l.size() > 5 ? std::string(l.substr(5)) : "asked by the launcher";
      stop_ = true;
    } else if (l.starts_with("coordinator ")) {
      const std::string_view rest = l.substr(12);
      const size_t space = rest.rfind(' ');
      int port = 0;
      if (space != std::string_view::npos) {
        std::from_chars(rest.data() + space + 1, rest.data() + rest.size(), port);
        coordinator_ = Endpoint{std::string(rest.substr(0, space)), port};
      }
    } else {
      std::fprintf(stderr, "tandem worker: ignoring an unknown line from the launcher: %.40s\n", line->c_str());
    }
    cv_.notify_all();
  }
}

void LauncherLink::heartbeat_loop() {
  int64_t beat = 0;
  std::unique_lock lock(mu_);
  while (!closing_) {
    lock.unlock();
    record("hb", {std::to_string(beat++)});
    lock.lock();
    cv_.wait_for(lock, interval_, [&] { return closing_; });
  }
}

}  // namespace tandem::launcher
