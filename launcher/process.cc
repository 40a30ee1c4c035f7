#include "launcher/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace tandem::launcher {
namespace {

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

Result<Process> Process::spawn(const ProcessSpec& spec) {
  if (spec.argv.empty()) return InvalidArgument("spawn: empty argv");
  // Everything the child needs is built before fork: after it, in a process
  // that may have threads, only async-signal-safe calls are allowed.
  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const std::string& kv : spec.env) {
    const std::string name = kv.substr(0, kv.find('=') + 1);
    std::erase_if(env_strings, [&](const std::string& e) { return e.compare(0, name.size(), name) == 0; });
    env_strings.push_back(kv);
  }
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();

  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return TANDEM_ERRNO("pipe");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    Status s = TANDEM_ERRNO("pipe");
    ::close(in[0]), ::close(in[1]);
    return s;
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    Status s = TANDEM_ERRNO("pipe");
    ::close(in[0]), ::close(in[1]), ::close(out[0]), ::close(out[1]);
    return s;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    Status s = TANDEM_ERRNO("fork");
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
    return s;
  }
  if (pid == 0) {
    ::setsid();
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the launcher died before prctl
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGCHLD, SIG_DFL);  // an ignored SIGCHLD survives exec and would lose the child's own children
    ::dup2(in[0], 0), ::dup2(out[1], 1), ::dup2(err[1], 2);
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) {
      const char msg[] = "tandem: cannot enter the working directory\n";
      (void)!::write(2, msg, sizeof msg - 1);
      ::_exit(126);
    }
    ::execvpe(argv[0], argv.data(), envp.data());
    const char msg[] = "tandem: exec failed: ";
    (void)!::write(2, msg, sizeof msg - 1);
    (void)!::write(2, argv[0], std::strlen(argv[0]));
    (void)!::write(2, "\n", 1);
    ::_exit(127);
  }
  ::close(in[0]), ::close(out[1]), ::close(err[1]);
  // Non-blocking both ways: a worker that stops reading its stdin (stopped,
  // wedged) must never block the launcher's loop; its heartbeat ends it.
  ::fcntl(in[1], F_SETFL, ::fcntl(in[1], F_GETFL) | O_NONBLOCK);
  ::fcntl(out[0], F_SETFL, ::fcntl(out[0], F_GETFL) | O_NONBLOCK);
  ::fcntl(err[0], F_SETFL, ::fcntl(err[0], F_GETFL) | O_NONBLOCK);
  Process p;
  p.pid_ = pid;
  p.stdin_ = in[1];
  p.stdout_ = out[0];
  p.stderr_ = err[0];
  return p;
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    this->~Process();
    pid_ = std::exchange(other.pid_, -1);
    stdin_ = std::exchange(other.stdin_, -1);
    stdout_ = std::exchange(other.stdout_, -1);
    stderr_ = std::exchange(other.stderr_, -1);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

Process::~Process() {
  if (running()) {
    kill_group(SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  close_fd(stdin_), close_fd(stdout_), close_fd(stderr_);
  pid_ = -1;
}

void Process::close_stdin() { close_fd(stdin_); }
void Process::close_stdout() { close_fd(stdout_); }
void Process::close_stderr() { close_fd(stderr_); }

std::optional<int> Process::try_wait() {
  if (status_ || pid_ <= 0) return status_;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) status_ = status;
  // Not our child any more: reaped by the kernel or another waiter. Waiting
  // on would never end, and signalling its pid could reach a stranger.
  if (r < 0 && errno == ECHILD) status_ = kWaitStatusLost;
  return status_;
}

void Process::kill_group(int signal) {
  if (!running()) return;
  // The child leads its group (setsid); if it has not got that far, the
  // group does not exist yet and the pid alone is signalled.
  if (::kill(-pid_, signal) != 0) ::kill(pid_, signal);
}

std::string describe_wait_status(int status) {
  if (status == Process::kWaitStatusLost) return "exited, status lost (reaped elsewhere: is SIGCHLD ignored?)";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return std::string("killed by SIG") + (name ? name : std::to_string(WTERMSIG(status)).c_str());
  }
  return "status " + std::to_string(status);
}

}  // namespace tandem::launcher
