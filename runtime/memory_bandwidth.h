// The memory roofline's denominator, measured in the same run as the figure it
// bounds: decode reads every weight once per token, so tokens/s can never
// exceed bandwidth / bytes-per-token.
#pragma once

#include <cstddef>

#include "runtime/status.h"
#include "runtime/thread_pool.h"

namespace tandem {

struct Bandwidth {
  double bytes_per_second = 0;  // median over the repetitions
  size_t buffer_bytes = 0;
  int threads = 0;
};

// Copies a `bytes` buffer into another with every thread of `pool`, `reps`
// times after a warm-up, and counts bytes read + bytes written per second
// (STREAM's "copy" convention). The buffers must exceed the last-level cache.
Result<Bandwidth> measure_copy_bandwidth(ThreadPool& pool, size_t bytes, int reps);

}  // namespace tandem
