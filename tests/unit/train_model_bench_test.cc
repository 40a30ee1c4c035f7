// Throughput of TrainModel::forward_backward for the Shakespeare recipe's
// shape, single-threaded and on 2 threads. Disabled by default (seconds of
// CPU); run with --gtest_also_run_disabled_tests. It prints tokens/s and
// checks that the threaded run computes the same step.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "runtime/thread_pool.h"
#include "runtime/train/train_model.h"
#include "tests/unit/train_model_test_util.h"

namespace tandem::train {
namespace {

TrainShape shakespeare_shape() {
  TrainShape s;  // the defaults are the recipe: dim 128, 4 layers, 4 heads, hidden 352, vocab 68, seq 64
  s.n_kv_heads = 4;
  return s;
}

// CPU seconds of the whole process: on a shared machine, what one thread
// would take uncontended (wall time there includes waiting for a core).
double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Timing {
  double tokens_per_second = 0;
  double loss = 0;
  std::vector<float> grads;
};

// The median of `steps` timed forward_backward calls after one warm-up.
Timing time_steps(ThreadPool* pool, int steps) {
  const TrainShape shape = shakespeare_shape();
  const int64_t batch = 12;
  auto model = TrainModel::create(shape, {}, nullptr, pool, batch);
  EXPECT_TRUE(model.ok());
  if (!model.ok()) return {};
  TrainModel& m = **model;
  m.init(1);
  const size_t n = static_cast<size_t>(batch * shape.seq_len);
  const std::vector<int> inputs = testing::random_tokens(n, shape.vocab_size, 1);
  const std::vector<int> targets = testing::random_tokens(n, shape.vocab_size, 2);
  std::vector<double> seconds, cpu_seconds;
  Timing out;
  for (int step = 0; step <= steps; ++step) {
    m.zero_grads();
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = process_cpu_seconds();
    auto loss = m.forward_backward(inputs, targets, batch, 1.0f);
    const double cpu = process_cpu_seconds() - cpu_start;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_TRUE(loss.ok());
    out.loss = loss.ok() ? *loss : 0;
    if (step > 0) {
      seconds.push_back(s);
      cpu_seconds.push_back(cpu);
    }
  }
  const double wall = median(seconds), cpu = median(cpu_seconds);
  out.tokens_per_second = static_cast<double>(n) / wall;
  out.grads.assign(m.grads().begin(), m.grads().end());
  std::printf("threads %d: median step %.1f ms wall, %.1f ms CPU; %.0f tokens/s (batch %lld x seq %lld); "
              "workspace %.1f MiB\n",
              pool ? pool->size() : 1, 1e3 * wall, 1e3 * cpu, out.tokens_per_second, static_cast<long long>(batch),
              static_cast<long long>(shape.seq_len), static_cast<double>(m.workspace_bytes()) / (1 << 20));
  return out;
}

TEST(TrainModelBench, DISABLED_ShakespeareShapeTokensPerSecond) {
  const Timing one = time_steps(nullptr, 9);
  ThreadPool pool(2);
  const Timing two = time_steps(&pool, 9);
  std::printf("2 threads / 1 thread: %.2fx\n", two.tokens_per_second / one.tokens_per_second);
  EXPECT_EQ(one.loss, two.loss);
  EXPECT_TRUE(one.grads == two.grads);
}

}  // namespace
}  // namespace tandem::train
