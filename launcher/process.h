// Child processes with their stdio on pipes: the launcher's workers (local
// `tandem worker` or the `ssh` client that runs one remotely) and preflight
// probes. Each child leads its own process group, so stopping it stops
// whatever it started too, and dies with the launcher (PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace tandem::launcher {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH
  std::string cwd;                // empty: the launcher's
  std::vector<std::string> env;   // "NAME=value" set on top of the launcher's environment
};

class Process {
 public:
  // stdout and stderr are non-blocking pipes the caller polls.
  static Result<Process> spawn(const ProcessSpec& spec);

  Process() = default;
  Process(Process&& other) noexcept { *this = std::move(other); }
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();  // a child still running is killed (its whole group) and reaped

  pid_t pid() const { return pid_; }
  int stdin_fd() const { return stdin_; }
  int stdout_fd() const { return stdout_; }
  int stderr_fd() const { return stderr_; }
  void close_stdin();
  void close_stdout();
  void close_stderr();

  // The wait status once the child has exited (reaping it), else nullopt;
  // kWaitStatusLost when someone else reaped it (SIGCHLD set to SIG_IGN
  // makes the kernel do that): gone, with its status unknown.
  std::optional<int> try_wait();
  static constexpr int kWaitStatusLost = -1;
  bool running() const { return pid_ > 0 && !status_; }
  // Signals the child's process group (the child and anything it started).
  void kill_group(int signal);

 private:
  pid_t pid_ = -1;
  int stdin_ = -1, stdout_ = -1, stderr_ = -1;
  std::optional<int> status_;
};

// "exit 0", "exit 255", "killed by SIGKILL", or what kWaitStatusLost means.
std::string describe_wait_status(int status);

}  // namespace tandem::launcher
