// The training job's communicator adapter (collectives/train_comm.h) and the
// rank-order f64 sum (runtime/train/train_comm.h) on the in-process
// transport, one thread per rank: what the trainer relies on is that every
// rank ends a step with bitwise the same numbers, that any byte count
// gathers, and that a missing rank is an error by the step deadline.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "collectives/collectives.h"
#include "collectives/train_comm.h"
#include "runtime/train/train_comm.h"

namespace tandem::collectives {
namespace {

using namespace std::chrono_literals;
using train::TrainComm;

// Generous: two shared cores, and the sanitizers slow everything down.
constexpr auto kStepTimeout = 60s;

#define EXPECT_OK(expr)                     \
  do {                                      \
    const ::tandem::Status s_ = (expr);     \
    EXPECT_TRUE(s_.ok()) << s_.to_string(); \
  } while (0)

// One TrainComm per rank over a fresh local group, each driven by its thread.
void on_ranks(int n, std::chrono::milliseconds timeout, const std::function<void(TrainComm&)>& body) {
  auto comms = make_local_group(n);
  std::vector<std::unique_ptr<TrainComm>> trains;
  for (auto& comm : comms) {
    auto made = make_train_comm(*comm, timeout);
    ASSERT_TRUE(made.ok()) << made.status().to_string();
    trains.push_back(std::move(made).value());
  }
  std::vector<std::thread> threads;
  for (auto& t : trains) threads.emplace_back(body, std::ref(*t));
  for (auto& t : threads) t.join();
}

// Rank r's i-th input: varied magnitudes and signs, so the order of the
// additions changes the rounding; only agreement between ranks is exact.
float noisy_value(int rank, size_t i) {
  std::mt19937 gen(static_cast<uint32_t>(rank * 7919 + static_cast<int>(i)));
  std::uniform_real_distribution<float> mantissa(-1.f, 1.f);
  return std::ldexp(mantissa(gen), static_cast<int>(i % 23) - 11);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Both all_reduce algorithms: the one-round exchange for small buffers and
// the ring above HostCommunicatorOptions::small_bytes (64 KiB).
constexpr size_t kCounts[] = {1, 7, 1000, 20011};

class TrainCommRanks : public ::testing::TestWithParam<int> {};

TEST_P(TrainCommRanks, SumIsExactOnIntegersAndBitwiseEqualEverywhere) {
  const int n = GetParam();
  for (size_t count : kCounts) {
    std::vector<std::vector<float>> exact(n), noisy(n);
    on_ranks(n, kStepTimeout, [&](TrainComm& comm) {
      const int r = comm.rank();
      exact[r].resize(count);
      noisy[r].resize(count);
      for (size_t i = 0; i < count; ++i) {
        exact[r][i] = static_cast<float>((static_cast<int>(i) % 101 - 50) * (r + 1));
        noisy[r][i] = noisy_value(r, i);
      }
      EXPECT_OK(comm.all_reduce_sum(exact[r]));
      EXPECT_OK(comm.all_reduce_sum(noisy[r]));
    });
    // Small integers: every order of addition gives the exact sum.
    const float rank_factor = static_cast<float>(n * (n + 1) / 2);
    for (size_t i = 0; i < count; ++i)
      ASSERT_EQ(exact[0][i], static_cast<float>(static_cast<int>(i) % 101 - 50) * rank_factor) << "i=" << i;
    for (size_t i = 0; i < count; ++i) {
      // Float rounding of n - 1 additions, bounded by the magnitudes added.
      double reference = 0, magnitude = 0;
      for (int r = 0; r < n; ++r) {
        reference += noisy_value(r, i);
        magnitude += std::fabs(noisy_value(r, i));
      }
      const double tolerance = n * std::numeric_limits<float>::epsilon() * magnitude;
      ASSERT_NEAR(noisy[0][i], reference, tolerance) << "i=" << i;
    }
    for (int r = 1; r < n; ++r) {
      EXPECT_TRUE(same_bits(exact[r], exact[0])) << "count " << count << " rank " << r;
      EXPECT_TRUE(same_bits(noisy[r], noisy[0])) << "count " << count << " rank " << r;
    }
  }
}

TEST_P(TrainCommRanks, MaxIsTheLargestOfAllRanksEverywhere) {
  const int n = GetParam();
  for (size_t count : kCounts) {
    std::vector<std::vector<float>> x(n);
    on_ranks(n, kStepTimeout, [&](TrainComm& comm) {
      const int r = comm.rank();
      x[r].resize(count);
      for (size_t i = 0; i < count; ++i) x[r][i] = noisy_value(r, i);
      x[r][count / 2] = -std::numeric_limits<float>::infinity();  // every rank: max is -inf
      EXPECT_OK(comm.all_reduce_max(x[r]));
    });
    for (size_t i = 0; i < count; ++i) {
      float reference = -std::numeric_limits<float>::infinity();
      if (i != count / 2)
        for (int r = 0; r < n; ++r) reference = std::max(reference, noisy_value(r, i));
      ASSERT_EQ(x[0][i], reference) << "i=" << i;
    }
    for (int r = 1; r < n; ++r) EXPECT_TRUE(same_bits(x[r], x[0])) << "count " << count << " rank " << r;
  }
}

TEST_P(TrainCommRanks, AllGatherConcatenatesAnyByteCountInRankOrder) {
  const int n = GetParam();
  constexpr unsigned char kCanary = 0xA5;
  constexpr size_t kGuard = 8;  // bytes after the output that must stay untouched
  for (size_t bytes : {0, 1, 2, 3, 4, 5, 7, 8, 13, 4099}) {
    std::vector<std::vector<unsigned char>> out(n);
    auto byte_of = [](int r, size_t i) { return static_cast<unsigned char>(r * 37 + i * 11 + 1); };
    on_ranks(n, kStepTimeout, [&](TrainComm& comm) {
      const int r = comm.rank();
      std::vector<unsigned char> local(bytes);
      for (size_t i = 0; i < bytes; ++i) local[i] = byte_of(r, i);
      out[r].assign(n * bytes + kGuard, kCanary);
      EXPECT_OK(comm.all_gather(local.data(), out[r].data(), bytes));
    });
    for (int r = 0; r < n; ++r) {
      for (int src = 0; src < n; ++src)
        for (size_t i = 0; i < bytes; ++i)
          ASSERT_EQ(out[r][src * bytes + i], byte_of(src, i))
              << "bytes " << bytes << " on rank " << r << " from rank " << src << " byte " << i;
      for (size_t g = 0; g < kGuard; ++g)
        ASSERT_EQ(out[r][n * bytes + g], kCanary) << "bytes " << bytes << ": wrote past the output";
    }
  }
}

TEST_P(TrainCommRanks, F64SumIsTheRankOrderSumOnEveryRank) {
  const int n = GetParam();
  // Large and tiny magnitudes: the result depends on the order of additions,
  // so only the rank-order expression matches.
  auto value = [](int r, size_t i) {
    const double big[] = {1e16, -1e16 + 2, 3.0, 0.1, -0.0};
    return big[(static_cast<size_t>(r) + i) % 5] * (i % 2 ? 1 : -1) + 0.3 * r;
  };
  constexpr size_t kCount = 11;
  std::vector<std::vector<double>> x(n);
  on_ranks(n, kStepTimeout, [&](TrainComm& comm) {
    const int r = comm.rank();
    x[r].resize(kCount);
    for (size_t i = 0; i < kCount; ++i) x[r][i] = value(r, i);
    EXPECT_OK(train::all_reduce_sum_f64(comm, x[r]));
  });
  for (size_t i = 0; i < kCount; ++i) {
    double reference = value(0, i);
    for (int r = 1; r < n; ++r) reference += value(r, i);
    for (int r = 0; r < n; ++r)
      ASSERT_EQ(std::memcmp(&x[r][i], &reference, sizeof(double)), 0)
          << "i=" << i << " rank " << r << ": " << x[r][i] << " vs " << reference;
  }
}

std::string ranks_name(const ::testing::TestParamInfo<int>& param) { return std::to_string(param.param) + "ranks"; }
INSTANTIATE_TEST_SUITE_P(Ranks, TrainCommRanks, ::testing::Values(1, 2, 3), ranks_name);

TEST(TrainComm, RankThatNeverArrivesIsDeadlineExceededNotAHang) {
  auto comms = make_local_group(2);
  constexpr auto kTimeout = 300ms;
  auto made = make_train_comm(*comms[0], kTimeout);
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  // Rank 1 stays alive (its communicator is not destroyed) but never calls.
  std::vector<float> x(16, 1.f);
  const auto start = Clock::now();
  const Status s = (*made)->all_reduce_sum(x);
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.to_string();
  EXPECT_GE(elapsed, kTimeout);
  EXPECT_LT(elapsed, kTimeout + 10s) << "the wait overran its deadline";
}

TEST(TrainComm, EveryCallGetsItsOwnDeadline) {
  // Three calls, each preceded by a pause on rank 1 shorter than the timeout,
  // together longer: a deadline shared between calls would expire.
  constexpr auto kTimeout = 2000ms;
  constexpr auto kPause = 800ms;
  on_ranks(2, kTimeout, [&](TrainComm& comm) {
    for (int call = 0; call < 3; ++call) {
      if (comm.rank() == 1) std::this_thread::sleep_for(kPause);
      std::vector<float> x(4, 1.f);
      EXPECT_OK(comm.all_reduce_sum(x));
      EXPECT_EQ(x[0], 2.f);
    }
  });
}

TEST(TrainComm, NonPositiveTimeoutIsRefused) {
  auto comms = make_local_group(1);
  EXPECT_EQ(make_train_comm(*comms[0], 0ms).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::collectives
