// Watching a job's workers: one poll loop over their stdio, a signal pipe
// and the clock. The first failure (a non-zero exit, a dropped ssh session,
// silence past the heartbeat timeout, a worker never ready, a signal to the
// launcher) becomes the job's cause; the others are asked to stop, then
// killed with their process groups after the grace period.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <iterator>
#include <memory>

#include "runtime/deadline.h"
#include "launcher/cluster.h"
#include "launcher/fd_io.h"
#include "launcher/launch.h"
#include "launcher/loss_curve.h"
#include "launcher/worker_protocol.h"
#include "runtime/atomic_file.h"

namespace tandem::launcher {
namespace {

int g_signal_pipe[2] = {-1, -1};

extern "C" void forward_signal(int sig) {
  const int saved = errno;
  const unsigned char byte = static_cast<unsigned char>(sig);
  (void)!::write(g_signal_pipe[1], &byte, 1);
  errno = saved;
}

constexpr std::chrono::milliseconds kSettleWindow{500};
// What report_error() (launcher/commands.h) starts a failing worker's line with.
constexpr std::string_view kErrorPrefix = "tandem: error: ";

std::string seconds_text(Clock::duration d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", std::chrono::duration<double>(d).count());
  return text;
}

struct Worker {
  int rank = 0;
  std::string host;
  std::string prefix;  // "[rank 0 localhost] "
  bool local = true;
  Process process;
  bool started = false;
  std::unique_ptr<WorkerOutputSplitter> out, err;
  std::FILE* log = nullptr;
  Clock::time_point last_beat;
  // Heartbeats start once the worker has read its header (after an ssh
  // login, exec and the libraries' loading); until the first, the startup
  // timeout is the one that applies.
  bool beating = false;
  bool ready = false;
  // What its stdin has not taken yet, in order. A pipe holds 64 KiB and the
  // header carries the whole config (up to 1 MiB): the rest goes out as the
  // worker reads it (pump() polls for that).
  std::string stdin_backlog;
  std::optional<int> status;
  Clock::time_point exited_at;
  // Its last "tandem: error:" line (what a failing worker prints), and its
  // last stderr line of any kind (a crash's message has no such prefix).
  std::string last_error;
  std::string last_line;
  std::string cause;
};

class Supervisor {
 public:
  Supervisor(const RunConfig& config, std::string run_id, std::string token, const NodeCommandContext& context,
             const SupervisorFiles& files)
      : config_(config), run_id_(std::move(run_id)), token_(std::move(token)), context_(context), files_(files) {}
  ~Supervisor() {
    for (Worker& w : workers_) {
      if (w.log) std::fclose(w.log);
    }
  }

  SupervisorResult run();

 private:
  void say(const std::string& text) {
    std::fprintf(stderr, "tandem: %s\n", text.c_str());
    std::fprintf(files_.launcher_log, "%s\n", text.c_str());
    std::fflush(files_.launcher_log);
  }
  void start(Worker& w);
  void fail(const std::string& cause, int code = 1);
  void send(Worker& w, const std::string& line) { to_stdin(w, line + "\n", /*droppable=*/line == "ping"); }
  // Queues bytes for the worker's stdin behind any backlog; a ping behind a
  // backlog would say nothing the backlog's arrival does not, so it is dropped.
  void to_stdin(Worker& w, std::string bytes, bool droppable = false);
  void flush_stdin(Worker& w);
  void on_record(Worker& w, const WorkerRecord& r);
  void on_exit(Worker& w);
  void record_loss(const std::vector<std::string>& args);
  void draw_loss_curve();
  void settle_failures(bool force);
  void pump(int timeout_ms);
  // Reads what the worker's pipes hold now, without blocking.
  void drain(Worker& w);
  void check_time();
  bool finished(const Worker& w) const {
    return w.status && w.process.stdout_fd() < 0 && w.process.stderr_fd() < 0;
  }
  std::string who(const Worker& w) const { return "rank " + std::to_string(w.rank) + " (" + w.host + ")"; }

  const RunConfig& config_;
  std::string run_id_, token_;
  NodeCommandContext context_;
  SupervisorFiles files_;
  std::vector<Worker> workers_;
  Clock::time_point started_ = Clock::now();
  Clock::time_point last_ping_ = Clock::now();
  bool stopping_ = false;
  Clock::time_point kill_at_;
  std::string cause_;
  int exit_code_ = 0;
  std::vector<LossPoint> loss_curve_;  // a training job's logged steps
  int signals_ = 0;
  std::optional<Clock::time_point> leader_done_;
  std::optional<Clock::time_point> first_failure_;
  bool pick_secondary_ = false;
};

void Supervisor::start(Worker& w) {
  const ProcessSpec spec = node_command(config_, w.rank, context_, {"worker", "--rank", std::to_string(w.rank), "--job", run_id_});
  std::string shown;
  for (const std::string& a : spec.argv) shown += (shown.empty() ? "" : " ") + a;
  say("starting " + who(w) + ": " + shown);
  auto process = Process::spawn(spec);
  if (!process.ok()) return fail(who(w) + ": cannot start: " + process.status().message());
  w.process = std::move(process).value();
  w.started = true;
  w.last_beat = Clock::now();
  WorkerHeader header{token_, to_yaml(config_)};
  to_stdin(w, encode_worker_header(header));
  auto print = [this, &w](std::FILE* terminal) {
    return [this, &w, terminal](std::string_view line) {
      std::fprintf(terminal, "%s%.*s\n", w.prefix.c_str(), static_cast<int>(line.size()), line.data());
      std::fflush(terminal);
      std::fprintf(w.log, "%.*s\n", static_cast<int>(line.size()), line.data());
      std::fflush(w.log);
      if (terminal == stderr && !line.empty()) {
        w.last_line = std::string(line.substr(0, 400));
        if (line.starts_with(kErrorPrefix)) w.last_error = w.last_line;
      }
    };
  };
  auto record = [this, &w](const WorkerRecord& r) { on_record(w, r); };
  w.out = std::make_unique<WorkerOutputSplitter>(print(stdout), record);
  w.err = std::make_unique<WorkerOutputSplitter>(print(stderr), record);
}

void Supervisor::fail(const std::string& cause, int code) {
  if (stopping_) return;
  stopping_ = true;
  cause_ = cause;
  exit_code_ = code;
  kill_at_ = Clock::now() + seconds_to_ms(config_.launch.stop_grace_s);
  say("stopping the job: " + cause);
  for (Worker& w : workers_) {
    if (w.started && !w.status) {
      send(w, "stop " + cause);
      if (w.cause.empty()) w.cause = "stopped: " + cause;
    }
  }
}

void Supervisor::to_stdin(Worker& w, std::string bytes, bool droppable) {
  if (w.process.stdin_fd() < 0 || w.status) return;
  if (!w.stdin_backlog.empty()) {
    if (!droppable) w.stdin_backlog += bytes;
    return;
  }
  w.stdin_backlog = std::move(bytes);
  flush_stdin(w);
}

void Supervisor::flush_stdin(Worker& w) {
  if (w.stdin_backlog.empty() || w.process.stdin_fd() < 0) return;
  auto written = write_some(w.process.stdin_fd(), w.stdin_backlog, "worker stdin");
  if (!written.ok()) {  // it exited or closed its stdin: its exit says why
    w.stdin_backlog.clear();
    w.process.close_stdin();
    return;
  }
  w.stdin_backlog.erase(0, *written);
}

void Supervisor::on_record(Worker& w, const WorkerRecord& r) {
  if (r.kind == "hb") {
    w.last_beat = Clock::now();
    w.beating = true;
  } else if (r.kind == "ready") {
    w.ready = true;
    say(who(w) + " is ready");
  } else if (r.kind == "coordinator" && w.rank == 0 && r.args.size() == 1) {
    const std::string line = "coordinator " + coordinator_dial_address(config_) + " " + r.args[0];
    for (Worker& other : workers_) {
      if (other.rank != 0) send(other, line);
    }
  } else if (r.kind == "train" && w.rank == 0 && r.args.size() == 1) {
    record_loss(r.args);
  } else if ((r.kind == "control" || r.kind == "http") && w.rank == 0 && r.args.size() == 1) {
    const bool http = r.kind == "http";
    const std::string path = files_.run_dir + (http ? "/http_endpoint" : "/endpoint");
    // Scripts poll for it: whole or absent, never half written.
    if (Status s = write_file_atomically(path, r.args[0] + "\n"); !s.ok()) say("warning: " + s.to_string());
    say(http ? "http endpoint " + r.args[0] : "control endpoint " + r.args[0] + " (token in " + files_.run_dir + "/token)");
  }
}

// One line of loss.csv per logged step, flushed at once so a job that dies
// still leaves its curve up to the last step.
void Supervisor::record_loss(const std::vector<std::string>& args) {
  Result<LossPoint> point = parse_loss_csv_line(args[0]);
  if (!point.ok()) {
    say("rank 0 sent a malformed training record (" + point.status().message() + "): not recorded");
    return;
  }
  loss_curve_.push_back(*point);
  const std::string path = files_.run_dir + "/" + kLossCsvFile;
  if (Status s = append_loss_csv(path, *point); !s.ok() && loss_curve_.size() == 1) {
    say("cannot write " + path + ": " + s.message());
  }
}

void Supervisor::draw_loss_curve() {
  if (loss_curve_.empty()) return;
  const std::string path = files_.run_dir + "/" + kLossPngFile;
  if (Status s = write_loss_png(loss_curve_, path); !s.ok()) {
    say("cannot draw the loss curve: " + s.message());
  } else {
    say("loss curve: " + files_.run_dir + "/" + kLossCsvFile + ", " + path);
  }
}

void Supervisor::on_exit(Worker& w) {
  // What it wrote before exiting (its "ready", its error line) may still be
  // in the pipes: read it before judging the exit.
  drain(w);
  const std::string status = describe_wait_status(*w.status);
  w.exited_at = Clock::now();
  say(who(w) + " exited: " + status);
  if (w.rank == 0 && !leader_done_) leader_done_ = Clock::now();
  if (status == "exit 0" && (w.ready || stopping_)) return;
  std::string reason = status;
  if (status == "exit 0") {
    // A worker is ready before it runs its job, so one that exits 0 without
    // being ready (unasked) ran none: not a tandem worker (a wrapper script,
    // a login shell's rc file, ForceCommand), or one that returned early.
    reason = "exit 0 without ever being ready (is cluster.nodes[" + std::to_string(w.rank) +
             "].tandem a tandem binary?)" + (w.last_line.empty() ? std::string() : ": " + w.last_line);
  } else if (!w.local && status == "exit 255") {
    reason = "the ssh session ended (connection lost, or the remote worker was killed)";
  } else if (!w.last_error.empty()) {
    reason = status + ": " + w.last_error;
  } else if ((status.starts_with("exit ") || status == "killed by SIGABRT") && !w.last_line.empty()) {
    // No error line: its last words may be a crash's (an abort() follows
    // "tandem: internal check failed ..."). A worker killed by another
    // signal said nothing about it: its last line would be some progress
    // note, misread as the cause.
    reason = status + ": " + w.last_line;
  }
  w.cause = reason;
  if (!stopping_ && !first_failure_) first_failure_ = Clock::now();
}

// When one rank fails, its peers usually fail a moment later because of it
// (a broken connection), and the order the launcher reaps them in says
// nothing. So failures are collected for a short window, and the job's cause
// is the first whose error is not a peer's loss.
void Supervisor::settle_failures(bool force) {
  if (!first_failure_ || stopping_) return;
  const bool all_exited = std::all_of(workers_.begin(), workers_.end(), [](const Worker& w) { return !w.started || w.status; });
  if (!force && !all_exited && Clock::now() - *first_failure_ < kSettleWindow) return;
  const Worker* pick = nullptr;
  for (const Worker& w : workers_) {
    if (!w.status || w.cause.empty()) continue;
    const bool secondary = w.cause.find("UNAVAILABLE") != std::string::npos ||
                           w.cause.find("ABORTED") != std::string::npos ||
                           w.cause.find("DEADLINE_EXCEEDED") != std::string::npos;
    if (!pick || (!secondary && pick_secondary_)) {
      pick = &w;
      pick_secondary_ = secondary;
    }
  }
  if (pick) fail(who(*pick) + ": " + pick->cause);
}

void Supervisor::pump(int timeout_ms) {
  std::vector<pollfd> fds = {{g_signal_pipe[0], POLLIN, 0}};
  for (Worker& w : workers_) {
    if (w.process.stdout_fd() >= 0) fds.push_back({w.process.stdout_fd(), POLLIN, 0});
    if (w.process.stderr_fd() >= 0) fds.push_back({w.process.stderr_fd(), POLLIN, 0});
    if (!w.stdin_backlog.empty() && w.process.stdin_fd() >= 0) fds.push_back({w.process.stdin_fd(), POLLOUT, 0});
  }
  if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) return;
  for (Worker& w : workers_) flush_stdin(w);
  unsigned char sig = 0;
  while (::read(g_signal_pipe[0], &sig, 1) == 1) {
    if (++signals_ == 1) {
      fail(std::string("interrupted by SIG") + sigabbrev_np(sig), 128 + sig);
    } else {
      say("second signal: killing every worker now");
      kill_at_ = Clock::now();
    }
  }
  for (Worker& w : workers_) drain(w);
}

void Supervisor::drain(Worker& w) {
  char buf[16384];
  for (const bool is_out : {true, false}) {
    const int fd = is_out ? w.process.stdout_fd() : w.process.stderr_fd();
    if (fd < 0) continue;
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        (is_out ? w.out : w.err)->feed(std::string_view(buf, static_cast<size_t>(n)));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        (is_out ? w.out : w.err)->finish();
        is_out ? w.process.close_stdout() : w.process.close_stderr();
      }
      break;
    }
  }
}

void Supervisor::check_time() {
  const Clock::time_point now = Clock::now();
  const bool ping = now - last_ping_ >= seconds_to_ms(config_.launch.heartbeat_interval_s);
  if (ping) last_ping_ = now;
  for (Worker& w : workers_) {
    if (!w.started) continue;
    if (!w.status) {
      w.status = w.process.try_wait();
      if (w.status) on_exit(w);
    }
    if (w.status) {
      // A grandchild holding the pipes open must not hold the launcher.
      if (now - w.exited_at > std::chrono::seconds(2)) w.process.close_stdout(), w.process.close_stderr();
      continue;
    }
    if (ping) send(w, "ping");
    if ((w.beating || w.ready) && now - w.last_beat > seconds_to_ms(config_.launch.heartbeat_timeout_s)) {
      w.cause = "no heartbeat for " + seconds_text(now - w.last_beat) + " (link down, host down or worker hung)";
      fail(who(w) + ": " + w.cause);
      w.process.kill_group(SIGKILL);
    } else if (!w.ready && now - started_ > seconds_to_ms(config_.launch.startup_timeout_s)) {
      w.cause = "not ready after " + seconds_text(now - started_) + " (still joining or loading)";
      fail(who(w) + ": " + w.cause);
    }
  }
  settle_failures(false);
  // The job is over when rank 0 is: the others get the grace period to follow.
  if (leader_done_ && !stopping_ &&
      now - *leader_done_ > seconds_to_ms(config_.launch.stop_grace_s + config_.launch.step_timeout_s)) {
    for (Worker& w : workers_) {
      if (w.started && !w.status) fail(who(w) + ": still running after rank 0 finished");
    }
  }
  if (stopping_ && now >= kill_at_) {
    for (Worker& w : workers_) {
      if (w.started && !w.status) {
        if (w.cause.empty()) w.cause = "killed after the stop grace period";
        w.process.kill_group(SIGKILL);
      }
    }
  }
}

SupervisorResult Supervisor::run() {
  const size_t n = config_.cluster.nodes.size();
  workers_.resize(n);
  for (size_t r = 0; r < n; ++r) {
    Worker& w = workers_[r];
    w.rank = static_cast<int>(r);
    w.host = config_.cluster.nodes[r].host;
    w.local = is_local_host(w.host);
    w.prefix = "[rank " + std::to_string(r) + " " + w.host + "] ";
    const std::string log = files_.run_dir + "/rank-" + std::to_string(r) + ".log";
    w.log = std::fopen(log.c_str(), "we");
    if (!w.log) w.log = std::fopen("/dev/null", "we");
  }
  for (Worker& w : workers_) {
    if (!stopping_) start(w);
  }
  for (;;) {
    pump(50);
    check_time();
    bool all = true;
    for (const Worker& w : workers_) all = all && (!w.started || finished(w));
    if (all) {
      settle_failures(true);
      break;
    }
  }
  draw_loss_curve();
  SupervisorResult result;
  result.ok = !stopping_;
  result.cause = cause_;
  result.exit_code = stopping_ ? (exit_code_ == 0 ? 1 : exit_code_) : 0;
  for (const Worker& w : workers_) {
    WorkerOutcome o{w.rank, w.host, w.started ? describe_wait_status(*w.status) : "not started", -1, w.cause};
    if (w.status && WIFEXITED(*w.status)) o.exit_code = WEXITSTATUS(*w.status);
    if (o.exit_code != 0 && result.ok) {
      result.ok = false;
      result.exit_code = 1;
      result.cause = who(w) + ": " + o.status;
    }
    result.workers.push_back(o);
  }
  return result;
}

}  // namespace

SupervisorResult supervise(const RunConfig& config, const std::string& run_id, const std::string& token,
                           const NodeCommandContext& context, const SupervisorFiles& files) {
  if (g_signal_pipe[0] < 0) {
    if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
      return SupervisorResult{false, "cannot create the signal pipe", 1, {}};
    }
  }
  struct sigaction action {};
  action.sa_handler = forward_signal;
  sigemptyset(&action.sa_mask);
  // SIGHUP: the terminal or the ssh session to the launcher's host closed;
  // left to its default (or to the handler UCX installs), the launcher would
  // die without stopping the job, or not stop at all. Every one of these
  // winds the job down and exits 128 + the signal.
  constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  struct sigaction old[std::size(kStopSignals)] = {};
  for (size_t i = 0; i < std::size(kStopSignals); ++i) ::sigaction(kStopSignals[i], &action, &old[i]);
  ::signal(SIGPIPE, SIG_IGN);
  SupervisorResult result = Supervisor(config, run_id, token, context, files).run();
  for (size_t i = 0; i < std::size(kStopSignals); ++i) ::sigaction(kStopSignals[i], &old[i], nullptr);
  return result;
}

}  // namespace tandem::launcher
