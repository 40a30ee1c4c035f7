#include "runtime/memory_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

namespace tandem {

Result<Bandwidth> measure_copy_bandwidth(ThreadPool& pool, size_t bytes, int reps) {
  if (bytes < 4096 || reps < 1) return InvalidArgument("bandwidth probe: need >= 4 KiB and >= 1 rep");
  std::unique_ptr<char[]> src(new (std::nothrow) char[bytes]);
  std::unique_ptr<char[]> dst(new (std::nothrow) char[bytes]);
  if (!src || !dst)
    return ResourceExhausted("bandwidth probe: cannot allocate 2 x " + std::to_string(bytes) + " bytes");
  const int64_t pages = static_cast<int64_t>(bytes / 4096);
  auto copy_all = [&] {
    pool.parallel_for(pages, 64, [&](int64_t begin, int64_t end) {
      const size_t from = begin * 4096, to = end == pages ? bytes : end * 4096;
      std::memcpy(dst.get() + from, src.get() + from, to - from);
    });
  };
  // First touch (page faults) outside the timed runs, by the same threads.
  pool.parallel_for(pages, 64, [&](int64_t begin, int64_t end) {
    const size_t from = begin * 4096, to = end == pages ? bytes : end * 4096;
    std::memset(src.get() + from, 1, to - from);
    std::memset(dst.get() + from, 0, to - from);
  });
  copy_all();
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    copy_all();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rates.push_back(2.0 * static_cast<double>(bytes) / s);
  }
  if (std::memcmp(src.get(), dst.get(), bytes) != 0)
    return Internal("bandwidth probe: the copy is wrong");  // would make the figure meaningless
  std::nth_element(rates.begin(), rates.begin() + rates.size() / 2, rates.end());
  return Bandwidth{rates[rates.size() / 2], bytes, pool.size()};
}

}  // namespace tandem
