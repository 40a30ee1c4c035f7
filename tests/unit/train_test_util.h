// Helpers for the training-op tests: seeded random arrays, and the central
// finite-difference check every backward is held to.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace tandem::train::testing {

template <typename T = double>
std::vector<T> random_vector(int64_t n, std::mt19937& rng, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(static_cast<size_t>(n));
  for (T& x : v) x = static_cast<T>(dist(rng));
  return v;
}

inline std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

// sum_i out[i] * weights[i]: the scalar objective whose gradient wrt `out`
// is `weights`, so a backward fed dout = weights returns dL/d(inputs).
inline double weighted_sum(const std::vector<double>& out, const std::vector<double>& weights) {
  double sum = 0.0;
  for (size_t i = 0; i < out.size(); ++i) sum += out[i] * weights[i];
  return sum;
}

// Central differences in double with step 1e-5: the truncation error is
// ~1e-10 times the third derivative and rounding ~1e-16 * |L| / 1e-5, both
// far below the tolerance 1e-7 + 1e-6 * |gradient|; a gradient term dropped
// or doubled is off by orders of magnitude more.
constexpr double kFiniteDifferenceStep = 1e-5;
constexpr double kGradientAbsTol = 1e-7;
constexpr double kGradientRelTol = 1e-6;

// Checks analytic[i] == d objective / d input[i] for every i; `objective`
// recomputes the forward from `input`, which is perturbed in place and
// restored.
inline void expect_gradient(const std::string& name, std::vector<double>& input,
                            const std::vector<double>& analytic, const std::function<double()>& objective) {
  ASSERT_EQ(input.size(), analytic.size()) << name;
  for (size_t i = 0; i < input.size(); ++i) {
    const double saved = input[i];
    input[i] = saved + kFiniteDifferenceStep;
    const double up = objective();
    input[i] = saved - kFiniteDifferenceStep;
    const double down = objective();
    input[i] = saved;
    const double numeric = (up - down) / (2.0 * kFiniteDifferenceStep);
    EXPECT_NEAR(analytic[i], numeric, kGradientAbsTol + kGradientRelTol * std::fabs(numeric))
        << name << "[" << i << "]";
  }
}

// Every float within tol * scale of the double reference, with scale the
// largest |reference| (at least 1): the float ops' error is relative to the
// size of the values they sum, not to each element.
inline void expect_float_matches_double(const std::string& name, const std::vector<float>& got,
                                        const std::vector<double>& reference, double tol) {
  ASSERT_EQ(got.size(), reference.size()) << name;
  double scale = 1.0;
  for (double r : reference) scale = std::max(scale, std::fabs(r));
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], reference[i], tol * scale) << name << "[" << i << "]";
  }
}

}  // namespace tandem::train::testing
