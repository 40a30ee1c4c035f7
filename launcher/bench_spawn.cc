// `tandem bench collectives --spawn-local N`: all ranks of a job on this
// machine, forked from one command.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "launcher/bench_collectives.h"
#include "launcher/commands.h"

namespace tandem::cli {
namespace {

// A port the kernel just handed out: free now, and very likely still free
// when rank 0 binds it a moment later.
Result<uint16_t> free_local_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return TANDEM_ERRNO("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    Status s = TANDEM_ERRNO("binding a free port on 127.0.0.1");
    close(fd);
    return s;
  }
  close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

int spawn_local_ranks(const CollectivesBenchFlags& flags) {
  const int n = flags.spawn_local;
  auto port = free_local_port();
  if (!port.ok()) return report_error(port.status());
  std::fflush(nullptr);  // or each child flushes the parent's buffered output again
  std::vector<pid_t> pids;
  for (int r = 0; r < n; ++r) {
    const pid_t pid = fork();
    if (pid < 0) {
      const Status s = TANDEM_ERRNO("fork");
      for (pid_t p : pids) kill(p, SIGKILL);
      for (pid_t p : pids) waitpid(p, nullptr, 0);
      return report_error(s);
    }
    if (pid == 0) {
      // Nothing in this process has started threads or UCX yet: the child
      // begins clean.
      CollectivesBenchFlags mine = flags;
      mine.spawn_local = 0;
      mine.rank = r;
      mine.world_size = n;
      mine.coordinator = "127.0.0.1:" + std::to_string(*port);
      const Status s = run_collectives_bench(mine);
      const int code = s.ok() ? 0 : report_error(s);
      std::fflush(nullptr);
      _exit(code);
    }
    pids.push_back(pid);
  }
  // Each rank's calls are bounded by --timeout; once one rank fails, the
  // others get that long to notice and exit before they are killed.
  int exit_code = 0;
  size_t running = pids.size();
  Clock::time_point kill_at = Clock::time_point::max();
  while (running > 0) {
    int status = 0;
    const pid_t done = waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      --running;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok) {
        if (exit_code == 0) exit_code = 1;
        if (!WIFEXITED(status))
          std::fprintf(stderr, "tandem: error: a rank ended by signal %d\n", WTERMSIG(status));
        if (kill_at == Clock::time_point::max())
          kill_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(flags.timeout_s));
      }
      continue;
    }
    if (Clock::now() >= kill_at) {
      std::fprintf(stderr, "tandem: error: %zu ranks still running %.0f s after another failed; killing them\n",
                   running, flags.timeout_s);
      for (pid_t p : pids) kill(p, SIGKILL);
      while (running > 0 && waitpid(-1, nullptr, 0) > 0) --running;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return exit_code;
}

}  // namespace tandem::cli
