// Every blocking wait in tandem takes a Deadline: a point on the monotonic
// clock after which the wait gives up with DEADLINE_EXCEEDED. A hung peer is
// an error, never a hang.
#pragma once

#include <chrono>

namespace tandem {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

inline Deadline deadline_after(std::chrono::milliseconds timeout) { return Clock::now() + timeout; }
inline bool expired(Deadline d) { return Clock::now() >= d; }
// Milliseconds left, at least 0, for APIs that take a timeout.
inline int64_t remaining_ms(Deadline d) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(d - Clock::now()).count();
  return left > 0 ? left : 0;
}

// A config's seconds (a double) as the milliseconds waits take.
inline std::chrono::milliseconds seconds_to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// Seconds from `start` until now: for timings that are reported, not waited on.
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace tandem
