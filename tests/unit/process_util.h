// Child processes for the multi-process tests: spawned commands (the tandem
// binary, `ip netns exec ...`) and forked functions, each waited for with a
// timeout so a hung child fails the test instead of hanging it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/test_paths.h"

namespace tandem::testing {

struct ChildExit {
  bool exited = false;     // exited normally (then `code`)
  int code = -1;
  int signal = 0;          // the signal that ended it, if one did
  bool timed_out = false;  // still running at the timeout: killed with SIGKILL
  double seconds = 0;      // from start to exit
};

class Child {
 public:
  // argv[0] is looked up in PATH; stdout and stderr go to files read by out()/err().
  static Child spawn(const std::vector<std::string>& argv);
  // Runs `body` in a forked child, which exits 0 when it returns "" and 1
  // otherwise; the returned text is message(). Fork only before anything in
  // this process started threads or libraries the child would inherit.
  static Child fork_call(const std::function<std::string()>& body);

  Child(Child&&) noexcept;
  Child& operator=(Child&&) = delete;
  Child(const Child&) = delete;
  ~Child();  // kills and reaps a child still running

  pid_t pid() const { return pid_; }
  ChildExit wait(std::chrono::milliseconds timeout);
  void kill(int signal);
  // Polls stdout until it contains `needle` or the child exits or the timeout passes.
  bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout);

  std::string out() const;
  std::string err() const;
  std::string message() const;

 private:
  Child() : dir_(std::make_unique<TempDir>()), start_(std::chrono::steady_clock::now()) {}
  std::unique_ptr<TempDir> dir_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  ChildExit exit_;
  std::chrono::steady_clock::time_point start_;
};

struct CommandResult {
  int exit_code = -1;  // -1 if it did not exit normally (signal, timeout)
  std::string out;     // stdout
  std::string err;     // stderr
};
// Runs argv to completion (killed after `timeout`), capturing both streams.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::minutes(5));

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_local_port();

// "exit 1 after 2.3 s" / "killed by signal 9" / "timed out": for failure messages.
std::string describe(const ChildExit& e);

}  // namespace tandem::testing
