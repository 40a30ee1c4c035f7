#include "collectives/host/reduce.h"

#include <algorithm>
#include <type_traits>

namespace tandem::collectives {
namespace {

// How an element is loaded into the type it is reduced in, and stored back.
template <typename T>
struct Plain {
  using Storage = T;
  static T load(T v) { return v; }
  static T store(T v) { return v; }
};
struct Half {
  using Storage = uint16_t;
  static float load(uint16_t v) { return half_to_float(v); }
  static uint16_t store(float v) { return float_to_half(v); }
};
struct BHalf {
  using Storage = uint16_t;
  static float load(uint16_t v) { return bf16_to_float(v); }
  static uint16_t store(float v) { return float_to_bf16(v); }
};

struct Sum {
  template <typename T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      // Signed overflow is UB; unsigned wraps, and the conversion back is
      // modular since C++20.
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
    } else {
      return a + b;
    }
  }
};
struct Max {
  template <typename T>
  T operator()(T a, T b) const { return std::max(a, b); }
};
struct Min {
  template <typename T>
  T operator()(T a, T b) const { return std::min(a, b); }
};

// __restrict__ tells the compiler the buffers do not alias, which is what lets
// it vectorise the f32/int loops at -O3 without runtime overlap checks.
template <typename E, typename Op>
void loop_into(typename E::Storage* __restrict__ d, const typename E::Storage* __restrict__ s, size_t n,
               Op op) {
  for (size_t i = 0; i < n; ++i) d[i] = E::store(op(E::load(d[i]), E::load(s[i])));
}
template <typename E, typename Op>
void loop_to(typename E::Storage* __restrict__ d, const typename E::Storage* __restrict__ a,
             const typename E::Storage* __restrict__ b, size_t n, Op op) {
  for (size_t i = 0; i < n; ++i) d[i] = E::store(op(E::load(a[i]), E::load(b[i])));
}

template <typename E, typename Op>
void run(void* d, const void* a, const void* b, size_t n, Op op) {
  using S = typename E::Storage;
  if (a == nullptr) {
    loop_into<E>(static_cast<S*>(d), static_cast<const S*>(b), n, op);
  } else {
    loop_to<E>(static_cast<S*>(d), static_cast<const S*>(a), static_cast<const S*>(b), n, op);
  }
}

template <typename E>
void by_op(ReduceOp op, void* d, const void* a, const void* b, size_t n) {
  switch (op) {
    case ReduceOp::kSum: return run<E>(d, a, b, n, Sum{});
    case ReduceOp::kMax: return run<E>(d, a, b, n, Max{});
    case ReduceOp::kMin: return run<E>(d, a, b, n, Min{});
  }
  TANDEM_CHECK_MSG(false, "unknown ReduceOp");
}

// a == nullptr: d = op(d, b).
void dispatch(DType dtype, ReduceOp op, void* d, const void* a, const void* b, size_t n) {
  switch (dtype) {
    case DType::kF32: return by_op<Plain<float>>(op, d, a, b, n);
    case DType::kF16: return by_op<Half>(op, d, a, b, n);
    case DType::kBF16: return by_op<BHalf>(op, d, a, b, n);
    case DType::kI32: return by_op<Plain<int32_t>>(op, d, a, b, n);
    case DType::kI64: return by_op<Plain<int64_t>>(op, d, a, b, n);
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4K:
    case DType::kF32Panels: break;
  }
  TANDEM_CHECK_MSG(false, "reduce of a non-reducible dtype");
}

}  // namespace

void reduce_into(void* dst, const void* src, size_t count, DType dtype, ReduceOp op) {
  dispatch(dtype, op, dst, nullptr, src, count);
}

void reduce_to(void* dst, const void* a, const void* b, size_t count, DType dtype, ReduceOp op) {
  TANDEM_CHECK(a != nullptr || count == 0);
  if (count == 0) return;
  dispatch(dtype, op, dst, a, b, count);
}

}  // namespace tandem::collectives
