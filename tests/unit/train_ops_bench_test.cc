// A measurement, not a test (disabled: it asserts nothing and its numbers
// depend on the machine): single-threaded GFLOP/s of the float matmul
// forward and backward on the Shakespeare recipe's MLP shape. Run with
//   tandem_train_tests --gtest_also_run_disabled_tests --gtest_filter='TrainOpsBench.*'
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/train/ops.h"
#include "tests/unit/train_test_util.h"

namespace tandem::train {
namespace {

// The median of `repeats` timed runs after two warm-up runs, in seconds.
double median_seconds(int repeats, const std::function<void()>& run) {
  run();
  run();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(times.begin(), times.begin() + repeats / 2, times.end());
  return times[static_cast<size_t>(repeats / 2)];
}

TEST(TrainOpsBench, DISABLED_MatmulGflopsOnTheShakespeareMlpShape) {
  const int64_t rows = 768, n_in = 128, n_out = 352;
  std::mt19937 rng(1);
  const auto x = testing::to_float(testing::random_vector(rows * n_in, rng));
  const auto w = testing::to_float(testing::random_vector(n_out * n_in, rng));
  const auto dout = testing::to_float(testing::random_vector(rows * n_out, rng));
  std::vector<float> out(rows * n_out), dx(rows * n_in), dw(n_out * n_in, 0.0f);
  const double flops = 2.0 * static_cast<double>(rows * n_in * n_out);  // one matmul's multiply-adds x 2

  const double forward =
      median_seconds(21, [&] { matmul_forward(out.data(), x.data(), w.data(), rows, n_in, n_out, nullptr); });
  const double backward = median_seconds(21, [&] {
    matmul_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rows, n_in, n_out, false, nullptr);
  });
  const double backward_dw = median_seconds(21, [&] {
    matmul_backward<float>(nullptr, dw.data(), dout.data(), x.data(), w.data(), rows, n_in, n_out, false,
                           nullptr);
  });
  std::printf("isa %s, rows %lld, n_in %lld, n_out %lld, 1 thread, medians of 21\n",
              cpu::isa_name(cpu::active_isa()).data(), static_cast<long long>(rows),
              static_cast<long long>(n_in), static_cast<long long>(n_out));
  std::printf("  forward            %8.3f ms  %6.1f GFLOP/s\n", forward * 1e3, flops / forward * 1e-9);
  std::printf("  backward (dx, dw)  %8.3f ms  %6.1f GFLOP/s\n", backward * 1e3,
              2.0 * flops / backward * 1e-9);
  std::printf("  backward dw only   %8.3f ms  %6.1f GFLOP/s\n", backward_dw * 1e3,
              flops / backward_dw * 1e-9);
}

}  // namespace
}  // namespace tandem::train
