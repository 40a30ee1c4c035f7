#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "runtime/thread_pool.h"

namespace tandem {
namespace {

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 7, 100, 4097}) {
      for (int64_t grain : {1, 3, 64}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, grain, [&](int64_t begin, int64_t end) {
          ASSERT_LE(0, begin);
          ASSERT_LT(begin, end);
          ASSERT_LE(end, n);
          for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " " << n << " " << i;
      }
    }
  }
}

TEST(ThreadPool, ManyBackToBackJobs) {
  // Back-to-back jobs are where a late-waking worker could run into the next job.
  ThreadPool pool(4);
  std::atomic<int64_t> sum{0};
  for (int job = 0; job < 2000; ++job)
    pool.parallel_for(16, 1, [&](int64_t b, int64_t e) { sum.fetch_add(e - b); });
  EXPECT_EQ(sum.load(), 2000 * 16);
}

TEST(ThreadPool, UsesMoreThanOneThread) {
  ThreadPool pool(2);
  EXPECT_EQ(pool.size(), 2);
  std::atomic<bool> other_ran{false};
  const auto caller = std::this_thread::get_id();
  // Each chunk sleeps, so the caller cannot take every chunk before the
  // worker wakes even on a loaded machine (yield alone flaked under ctest -j
  // on two busy cores); tried until a generous deadline, not a count.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!other_ran && std::chrono::steady_clock::now() < deadline)
    pool.parallel_for(16, 1, [&](int64_t, int64_t) {
      if (std::this_thread::get_id() != caller) other_ran = true;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    });
  EXPECT_TRUE(other_ran.load());
}

}  // namespace
}  // namespace tandem
