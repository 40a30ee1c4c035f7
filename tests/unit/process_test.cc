// The launcher's child processes and its writes to their pipes
// (launcher/process.h, launcher/fd_io.h).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "launcher/fd_io.h"
#include "launcher/process.h"

namespace tandem::launcher {
namespace {

using namespace std::chrono_literals;

// With SIGCHLD ignored (inherited that way, it survives exec) the kernel
// reaps children itself: try_wait must say so instead of reporting a child
// that has long exited as running forever.
TEST(Process, AChildReapedElsewhereIsReportedNotWaitedOnForever) {
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ASSERT_EQ(::sigaction(SIGCHLD, &ignore, &old), 0);
  auto child = Process::spawn(ProcessSpec{{"true"}, "", {}});
  std::optional<int> status;
  const auto until = std::chrono::steady_clock::now() + 10s;
  if (child.ok()) {
    while (!(status = child->try_wait()) && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
  }
  ::sigaction(SIGCHLD, &old, nullptr);
  ASSERT_TRUE(child.ok()) << child.status().to_string();
  ASSERT_TRUE(status.has_value()) << "still 'running' 10 s after `true` was started";
  EXPECT_EQ(*status, Process::kWaitStatusLost);
  EXPECT_FALSE(child->running());
  EXPECT_NE(describe_wait_status(*status).find("reaped elsewhere"), std::string::npos);
}

TEST(Process, ANormalExitKeepsItsStatus) {
  auto child = Process::spawn(ProcessSpec{{"sh", "-c", "exit 3"}, "", {}});
  ASSERT_TRUE(child.ok()) << child.status().to_string();
  std::optional<int> status;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!(status = child->try_wait()) && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(describe_wait_status(*status), "exit 3");
}

// A worker's header can be larger than a pipe holds: write_some says how
// much went, so the rest can wait for the reader; write_all refuses.
TEST(FdIo, WriteSomeStopsAtAFullPipeAndSaysHowMuchWent) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  const std::string big(4 << 20, 'x');  // more than any pipe buffer
  auto written = write_some(fds[1], big, "test pipe");
  ASSERT_TRUE(written.ok()) << written.status().to_string();
  EXPECT_GT(*written, 0u);
  EXPECT_LT(*written, big.size());
  const Status full = write_all(fds[1], "y", "test pipe");
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.to_string();
  ::close(fds[0]);
  const auto old_pipe = ::signal(SIGPIPE, SIG_IGN);  // as the launcher runs
  auto closed = write_some(fds[1], "z", "test pipe");
  ::signal(SIGPIPE, old_pipe);
  EXPECT_EQ(closed.status().code(), StatusCode::kUnavailable) << closed.status().to_string();
  ::close(fds[1]);
}

}  // namespace
}  // namespace tandem::launcher
