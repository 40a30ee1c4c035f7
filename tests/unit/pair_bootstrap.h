// A Bootstrap for one or two forked test processes over a socketpair: lets
// the UCX transport be tested without the TCP bootstrap.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "collectives/bootstrap/bootstrap.h"

namespace tandem::testing {

class PairBootstrap final : public collectives::Bootstrap {
 public:
  // size 1: fd is unused; size 2: fd is this rank's end of a socketpair.
  PairBootstrap(int rank, int size, int fd) : rank_(rank), size_(size), fd_(fd) {}
  ~PairBootstrap() override {
    if (fd_ >= 0) close(fd_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  uint16_t port() const override { return 0; }

  Result<std::vector<std::string>> all_gather(const std::string& blob, Deadline deadline) override {
    std::vector<std::string> all(static_cast<size_t>(size_));
    all[static_cast<size_t>(rank_)] = blob;
    if (size_ == 1) return all;
    const uint32_t n = static_cast<uint32_t>(blob.size());
    TANDEM_RETURN_IF_ERROR(io(true, const_cast<uint32_t*>(&n), sizeof n, deadline));
    TANDEM_RETURN_IF_ERROR(io(true, const_cast<char*>(blob.data()), blob.size(), deadline));
    uint32_t m = 0;
    TANDEM_RETURN_IF_ERROR(io(false, &m, sizeof m, deadline));
    std::string& other = all[static_cast<size_t>(1 - rank_)];
    other.resize(m);
    TANDEM_RETURN_IF_ERROR(io(false, other.data(), m, deadline));
    return all;
  }
  Status barrier(Deadline deadline) override { return all_gather("", deadline).status(); }

 private:
  Status io(bool write, void* data, size_t bytes, Deadline deadline) {
    auto* p = static_cast<char*>(data);
    while (bytes > 0) {
      pollfd pfd{fd_, static_cast<short>(write ? POLLOUT : POLLIN), 0};
      if (poll(&pfd, 1, static_cast<int>(remaining_ms(deadline))) <= 0)
        return DeadlineExceeded("pair bootstrap: peer silent");
      const ssize_t r = write ? ::write(fd_, p, bytes) : ::read(fd_, p, bytes);
      if (r <= 0) return Unavailable("pair bootstrap: peer gone");
      p += r;
      bytes -= static_cast<size_t>(r);
    }
    return Status::Ok();
  }
  int rank_, size_, fd_;
};

}  // namespace tandem::testing
