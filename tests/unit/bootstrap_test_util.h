// Helpers for bootstrap_test.cc: ranks run as threads, and raw POSIX sockets
// that play broken peers (garbage, silence, a coordinator that never answers).
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "collectives/bootstrap/bootstrap.h"

namespace tandem::collectives::bootstrap_testing {

// A port nobody listens on right now: bind an ephemeral one and release it.
// (Rank 0 learns its port only when connect() returns, after everyone joined,
// so in-process tests pick the port up front.)
inline uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline BootstrapConfig config(int rank, int world, uint16_t port, std::string job = "job-a") {
  BootstrapConfig c;
  c.rank = rank;
  c.world_size = world;
  c.coordinator_host = "127.0.0.1";
  c.coordinator_port = port;
  c.job_id = std::move(job);
  return c;
}

struct Joined {
  Result<std::unique_ptr<Bootstrap>> result = Internal("not run");
  std::chrono::milliseconds elapsed{0};
};

// connect() on its own thread, timed.
inline std::future<Joined> start(BootstrapConfig c, std::chrono::milliseconds timeout) {
  return std::async(std::launch::async, [c, timeout] {
    Joined j;
    const auto t0 = Clock::now();
    j.result = Bootstrap::connect(c, deadline_after(timeout));
    j.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    return j;
  });
}

inline std::vector<std::unique_ptr<Bootstrap>> form(int world, uint16_t port) {
  std::vector<std::future<Joined>> futures;
  for (int r = 0; r < world; ++r) futures.push_back(start(config(r, world, port), std::chrono::seconds(20)));
  std::vector<std::unique_ptr<Bootstrap>> out;
  for (auto& f : futures) {
    Joined j = f.get();
    EXPECT_TRUE(j.result.ok()) << j.result.status().to_string();
    if (j.result.ok()) out.push_back(std::move(j.result).value());
  }
  return out;
}

// Every rank gathers `rounds` times concurrently; blob of rank r, round i is
// distinct, binary, and of varying size.
inline void gather_rounds(std::vector<std::unique_ptr<Bootstrap>>& ranks, int rounds) {
  const int n = static_cast<int>(ranks.size());
  auto blob = [](int r, int i) {
    return std::string(static_cast<size_t>(r * 7 + i), static_cast<char>(r)) + "#" + std::to_string(i);
  };
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      for (int i = 0; i < rounds; ++i) {
        auto got = ranks[r]->all_gather(blob(r, i), deadline_after(std::chrono::seconds(20)));
        ASSERT_TRUE(got.ok()) << got.status().to_string();
        ASSERT_EQ(got->size(), static_cast<size_t>(n));
        for (int q = 0; q < n; ++q) EXPECT_EQ((*got)[q], blob(q, i)) << "rank " << r << " round " << i;
        Status b = ranks[r]->barrier(deadline_after(std::chrono::seconds(20)));
        EXPECT_TRUE(b.ok()) << b.to_string();
      }
    });
  }
  for (auto& t : threads) t.join();
}

// A client socket to 127.0.0.1:port, connected (retrying while refused) in
// the constructor.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    for (int i = 0; i < 500 && fd_ < 0; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(port);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        fd_ = fd;
      } else {
        ::close(fd);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  void send(std::string_view bytes) const { (void)!::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }

  // Everything the other side sends until it closes (eof = true) or timeout.
  std::string read_all(std::chrono::milliseconds timeout, bool* eof) const {
    std::string out;
    *eof = false;
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(remaining_ms(end))) <= 0) break;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        *eof = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int fd_ = -1;
};

// A "coordinator" whose kernel completes TCP handshakes (listen backlog) but
// that never accepts nor answers.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace tandem::collectives::bootstrap_testing
