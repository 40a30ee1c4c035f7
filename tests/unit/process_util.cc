#include "tests/unit/process_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace tandem::testing {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

Child Child::spawn(const std::vector<std::string>& argv) {
  Child c;
  const std::string out = c.dir_->file("out"), err = c.dir_->file("err");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int rc = posix_spawnp(&c.pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  return c;
}

Child Child::fork_call(const std::function<std::string()>& body) {
  Child c;
  const std::string msg = c.dir_->file("message");
  std::fflush(nullptr);  // or the child flushes the parent's buffered output again
  c.pid_ = fork();
  if (c.pid_ < 0) throw std::runtime_error("fork failed");
  if (c.pid_ == 0) {
    std::string text;
    try {
      text = body();
    } catch (const std::exception& e) {
      text = std::string("exception: ") + e.what();
    }
    if (FILE* f = std::fopen(msg.c_str(), "wb")) {
      std::fwrite(text.data(), 1, text.size(), f);
      std::fclose(f);
    }
    std::fflush(nullptr);
    _exit(text.empty() ? 0 : 1);  // skip the parent's atexit handlers and gtest's
  }
  return c;
}

Child::Child(Child&& o) noexcept
    : dir_(std::move(o.dir_)), pid_(o.pid_), reaped_(o.reaped_), exit_(o.exit_), start_(o.start_) {
  o.pid_ = -1;
}

Child::~Child() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

ChildExit Child::wait(std::chrono::milliseconds timeout) {
  if (reaped_ || pid_ <= 0) return exit_;
  const auto until = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (std::chrono::steady_clock::now() >= until) {
      exit_.timed_out = true;
      ::kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  reaped_ = true;
  exit_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  exit_.exited = WIFEXITED(status) && !exit_.timed_out;
  exit_.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  exit_.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return exit_;
}

void Child::kill(int signal) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, signal);
}

bool Child::wait_for_output(const std::string& needle, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (out().find(needle) != std::string::npos) return true;
    if (reaped_) return false;
    siginfo_t info{};
    // WNOWAIT: look without reaping, so wait() still reports the exit.
    if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid_)
      return out().find(needle) != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string Child::out() const { return slurp(dir_->file("out")); }
std::string Child::err() const { return slurp(dir_->file("err")); }
std::string Child::message() const { return slurp(dir_->file("message")); }

int free_local_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free port on 127.0.0.1");
  close(fd);
  return ntohs(a.sin_port);
}

std::string describe(const ChildExit& e) {
  char buf[96];
  if (e.timed_out) std::snprintf(buf, sizeof buf, "timed out after %.1f s (killed)", e.seconds);
  else if (e.exited) std::snprintf(buf, sizeof buf, "exit %d after %.2f s", e.code, e.seconds);
  else std::snprintf(buf, sizeof buf, "killed by signal %d after %.2f s", e.signal, e.seconds);
  return buf;
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  Child child = Child::spawn(argv);
  const ChildExit e = child.wait(timeout);
  return CommandResult{e.exited ? e.code : -1, child.out(), child.err()};
}

}  // namespace tandem::testing
