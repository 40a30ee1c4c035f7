#include "launcher/fd_io.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace tandem::launcher {

Status LineReader::fill(Deadline deadline) {
  char chunk[4096];
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(remaining_ms(deadline), 1 << 30)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return TANDEM_ERRNO("poll on " + what_);
    if (ready == 0) return DeadlineExceeded(what_ + ": nothing arrived by the deadline");
    const ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return TANDEM_ERRNO("reading " + what_);
    if (n == 0) return Unavailable(what_ + " closed");
    buffer_.append(chunk, static_cast<size_t>(n));
    return Status::Ok();
  }
}

Result<std::string> LineReader::read_line(Deadline deadline, size_t max_bytes) {
  for (;;) {
    if (const size_t nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (buffer_.size() > max_bytes) {
      return DataLoss(what_ + ": a line longer than " + std::to_string(max_bytes) + " bytes");
    }
    TANDEM_RETURN_IF_ERROR(fill(deadline));
  }
}

Result<std::string> LineReader::read_bytes(size_t n, Deadline deadline) {
  while (buffer_.size() < n) TANDEM_RETURN_IF_ERROR(fill(deadline));
  std::string bytes = buffer_.substr(0, n);
  buffer_.erase(0, n);
  return bytes;
}

Result<size_t> write_some(int fd, std::string_view bytes, std::string_view what) {
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0 && errno == EPIPE) return Unavailable(std::string(what) + " closed");
    if (n < 0) return TANDEM_ERRNO("writing " + std::string(what));
    written += static_cast<size_t>(n);
  }
  return written;
}

Status write_all(int fd, std::string_view bytes, std::string_view what) {
  TANDEM_ASSIGN_OR_RETURN(const size_t written, write_some(fd, bytes, what));
  if (written < bytes.size()) return ResourceExhausted(std::string(what) + " is full: nobody reads it");
  return Status::Ok();
}

}  // namespace tandem::launcher
