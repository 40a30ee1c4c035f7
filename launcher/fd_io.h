// Blocking I/O on pipes and stdio with deadlines: what the launcher and its
// workers use to talk over the worker's stdio (launcher/worker_protocol.h).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "runtime/deadline.h"
#include "runtime/status.h"

namespace tandem::launcher {

// Buffered reads from a file descriptor it does not own. Unavailable at end
// of file (naming `what`), DeadlineExceeded when nothing came in time.
class LineReader {
 public:
  LineReader(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  // A line without its '\n'; lines longer than max_bytes are an error.
  Result<std::string> read_line(Deadline deadline, size_t max_bytes = 4096);
  Result<std::string> read_bytes(size_t n, Deadline deadline);

 private:
  Status fill(Deadline deadline);
  int fd_;
  std::string what_;
  std::string buffer_;
};

// Writes all of `bytes` (retrying short writes and EINTR); a closed pipe is
// Unavailable, not SIGPIPE (callers ignore SIGPIPE); a full non-blocking
// pipe is ResourceExhausted (the reader is not reading).
Status write_all(int fd, std::string_view bytes, std::string_view what);

// Writes what a non-blocking `fd` takes now, retrying short writes and EINTR,
// and returns how many bytes went (fewer than all when the pipe is full);
// errors as write_all's.
Result<size_t> write_some(int fd, std::string_view bytes, std::string_view what);

}  // namespace tandem::launcher
