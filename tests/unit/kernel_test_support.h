// What the CPU kernel tests share (kernels_test.cc, kernels_matmul_test.cc):
// the tolerances, buffers that sit off SIMD alignment with guard floats, and
// the fixture that runs a test once per ISA. The policy:
//
// Tolerances (the float kernels vs the float64 reference):
//  - sums (dot, matmuls, rmsnorm, softmax): |got - ref| <= 1e-5 * S, where
//    S is the sum of |terms| (sum |a_i * b_i| for a dot; |ref| for rmsnorm and
//    softmax, whose sums are of positive terms). Dropping or doubling one term
//    of a 4099-long dot is ~2e-4 * S, so a tail bug cannot hide under this.
//  - elementwise (axpy, add, swiglu, rope): |got - ref| <= 1e-6 * S with S the
//    sum of the |terms| of that element (|y| + |a*x| for axpy), plus 1e-30 so
//    results that underflow to 0 in float pass.
//  - attention_heads: absolute 1e-5 on outputs of size ~0.1-1 (inputs in
//    [-1, 1]); a wrong position, scale or weight is off by >1e-3.
// Inputs sit one float past a 32-byte boundary (like weights mmapped at
// offset 28) and end exactly at their allocation, so ASan sees overreads;
// outputs carry guard floats after the end that must stay untouched.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/cpu/kernels.h"

namespace tandem::cpu::kernel_test {

constexpr double kSumTol = 1e-5;
constexpr double kElemTol = 1e-6;
constexpr double kUnderflowFloor = 1e-30;
constexpr int64_t kOddSizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 257, 1023, 4099};
constexpr int64_t kGuard = 8;
constexpr float kGuardValue = -12345.0f;

// A float array starting 4 bytes into its storage (unaligned for SIMD) and
// ending exactly at the end of the allocation, or followed by guard floats.
class Buffer {
 public:
  explicit Buffer(int64_t n, bool guarded = false)
      : n_(n), guard_(guarded ? kGuard : 0), storage_(static_cast<size_t>(1 + n + guard_), kGuardValue) {}
  float* data() { return storage_.data() + 1; }
  const float* data() const { return storage_.data() + 1; }
  float& operator[](int64_t i) { return data()[i]; }
  float operator[](int64_t i) const { return data()[i]; }
  int64_t size() const { return n_; }
  bool guards_intact() const {
    for (int64_t g = 0; g < guard_; ++g) {
      if (storage_[static_cast<size_t>(1 + n_ + g)] != kGuardValue) return false;
    }
    return true;
  }

 private:
  int64_t n_, guard_;
  std::vector<float> storage_;
};

inline Buffer random_buffer(int64_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f, bool guarded = false) {
  Buffer b(n, guarded);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < n; ++i) b[i] = dist(rng);
  return b;
}

inline void expect_close(double got, double ref, double tol, const char* what, int64_t i) {
  EXPECT_LE(std::fabs(got - ref), tol) << what << " index " << i << ": got " << got << ", want " << ref;
}

class KernelTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) {
      GTEST_SKIP() << "ISA " << isa_name(GetParam()) << " is not supported by this CPU or build";
    }
    saved_ = active_isa();
    ASSERT_TRUE(set_active_isa(GetParam()));
  }
  void TearDown() override {
    if (saved_) set_active_isa(*saved_);
  }
  std::mt19937 rng_{20240611};

 private:
  std::optional<Isa> saved_;
};

}  // namespace tandem::cpu::kernel_test
