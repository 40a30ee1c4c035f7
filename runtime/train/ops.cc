// The row-wise and elementwise training ops: embedding, RMSNorm, RoPE,
// SwiGLU, cross-entropy. (matmul and attention, the ones worth threads, are
// in ops_matmul.cc and ops_attention.cc.)
#include "runtime/train/ops.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/status.h"
#include "runtime/train/ops_internal.h"

namespace tandem::train {

template <typename T>
void embedding_forward(T* out, const T* table, int64_t rows, int64_t dim, std::span<const int> tokens,
                       int64_t first_row) {
  for (size_t t = 0; t < tokens.size(); ++t) {
    T* out_row = out + static_cast<int64_t>(t) * dim;
    const int64_t row = tokens[t] - first_row;
    if (row >= 0 && row < rows) {
      std::copy_n(table + row * dim, dim, out_row);
    } else {
      std::fill_n(out_row, dim, T(0));
    }
  }
}

template <typename T>
void embedding_backward(T* dtable, const T* dout, int64_t rows, int64_t dim, std::span<const int> tokens,
                        int64_t first_row) {
  for (size_t t = 0; t < tokens.size(); ++t) {
    const int64_t row = tokens[t] - first_row;
    if (row < 0 || row >= rows) continue;
    T* grad_row = dtable + row * dim;
    const T* dout_row = dout + static_cast<int64_t>(t) * dim;
    for (int64_t i = 0; i < dim; ++i) grad_row[i] += dout_row[i];
  }
}

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t rows, int64_t n, T eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* x_row = x + r * n;
    T* out_row = out + r * n;
    // The same arithmetic as cpu::rmsnorm (x * scale, then * w), so the
    // trained model's forward matches the inference engine's.
    const T scale = T(1) / std::sqrt(detail::dot(x_row, x_row, n) / static_cast<T>(n) + eps);
    rstd[r] = scale;
    for (int64_t i = 0; i < n; ++i) out_row[i] = x_row[i] * scale * w[i];
  }
}

template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int64_t rows,
                      int64_t n) {
  // With s = rstd: out_i = w_i x_i s and ds/dx_j = -s^3 x_j / n, so
  // dx_j = s (w_j dout_j - x_j s^2 sum_i(dout_i w_i x_i) / n).
  for (int64_t r = 0; r < rows; ++r) {
    const T* x_row = x + r * n;
    const T* dout_row = dout + r * n;
    T* dx_row = dx + r * n;
    const T s = rstd[r];
    T projection = 0;
    for (int64_t i = 0; i < n; ++i) projection += dout_row[i] * w[i] * x_row[i];
    const T coefficient = projection * s * s / static_cast<T>(n);
    for (int64_t i = 0; i < n; ++i) {
      dw[i] += dout_row[i] * x_row[i] * s;
      dx_row[i] = s * (w[i] * dout_row[i] - x_row[i] * coefficient);
    }
  }
}

namespace {

// cos and sin of pos * theta^(-2j / head_dim) for every position and pair,
// computed exactly as cpu::rope_interleaved does (the angle in double, then
// rounded to T), so training and inference rotate by the same numbers.
template <typename T>
struct RopeTable {
  RopeTable(int64_t seq, int64_t head_dim, T theta) : pairs(head_dim / 2), cos_sin(seq * pairs * 2) {
    for (int64_t pos = 0; pos < seq; ++pos) {
      for (int64_t j = 0; j < pairs; ++j) {
        const double freq = std::pow(static_cast<double>(theta),
                                     -2.0 * static_cast<double>(j) / static_cast<double>(head_dim));
        const double angle = static_cast<double>(pos) * freq;
        cos_sin[(pos * pairs + j) * 2] = static_cast<T>(std::cos(angle));
        cos_sin[(pos * pairs + j) * 2 + 1] = static_cast<T>(std::sin(angle));
      }
    }
  }
  int64_t pairs;
  std::vector<T> cos_sin;
};

// direction +1 rotates by +angle (the forward), -1 by -angle (its transpose).
template <typename T>
void rope_rotate(T* v, int64_t rows, int64_t seq, int64_t n_heads, int64_t head_dim, T theta, T direction) {
  TANDEM_CHECK(head_dim % 2 == 0 && seq >= 1);
  const RopeTable<T> table(std::min(rows, seq), head_dim, theta);
  for (int64_t r = 0; r < rows; ++r) {
    const T* cos_sin = table.cos_sin.data() + (r % seq) * table.pairs * 2;
    T* row = v + r * n_heads * head_dim;
    for (int64_t h = 0; h < n_heads; ++h) {
      for (int64_t j = 0; j < table.pairs; ++j) {
        const T c = cos_sin[2 * j];
        const T s = direction * cos_sin[2 * j + 1];
        T* pair = row + h * head_dim + 2 * j;
        const T v0 = pair[0], v1 = pair[1];
        pair[0] = v0 * c - v1 * s;
        pair[1] = v0 * s + v1 * c;
      }
    }
  }
}

}  // namespace

template <typename T>
void rope_forward(T* v, int64_t rows, int64_t seq, int64_t n_heads, int64_t head_dim, T theta) {
  rope_rotate(v, rows, seq, n_heads, head_dim, theta, T(1));
}

template <typename T>
void rope_backward(T* dv, int64_t rows, int64_t seq, int64_t n_heads, int64_t head_dim, T theta) {
  rope_rotate(dv, rows, seq, n_heads, head_dim, theta, T(-1));
}

template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    cpu::swiglu(out, gate, up, n);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (T(1) + std::exp(-gate[i])) * up[i];
  }
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
  // silu'(g) = sig(g) (1 + g (1 - sig(g))). For g << 0, exp(-g) is inf and
  // sig is 0: both gradients go to 0, the right limit.
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    const T sig = T(1) / (T(1) + std::exp(-g));
    const T d = dout[i];
    const T u = up[i];
    dgate[i] = d * u * sig * (T(1) + g * (T(1) - sig));
    dup[i] = d * g * sig;
  }
}

template <typename T>
double cross_entropy(T* dlogits, const T* logits, std::span<const int> targets, int64_t rows, int64_t vocab,
                     T grad_scale) {
  TANDEM_CHECK(static_cast<int64_t>(targets.size()) >= rows);
  double loss = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = logits + r * vocab;
    const int target = targets[static_cast<size_t>(r)];
    TANDEM_CHECK_MSG(target >= 0 && target < vocab, "cross_entropy: the caller validates targets");
    // Shifting by the max keeps every exp in (0, 1]: logits of any size work.
    const T max_logit = *std::max_element(row, row + vocab);
    double sum = 0.0;
    if (dlogits == nullptr) {
      for (int64_t j = 0; j < vocab; ++j) sum += static_cast<double>(std::exp(row[j] - max_logit));
    } else {
      T* grad = dlogits + r * vocab;
      for (int64_t j = 0; j < vocab; ++j) sum += static_cast<double>(grad[j] = std::exp(row[j] - max_logit));
      const T inv_sum = static_cast<T>(1.0 / sum);
      const T target_prob = grad[target] * inv_sum;
      for (int64_t j = 0; j < vocab; ++j) grad[j] = grad[j] * inv_sum * grad_scale;
      grad[target] = (target_prob - T(1)) * grad_scale;
    }
    // -log softmax[target] = log(sum) - (logit[target] - max)
    loss += std::log(sum) - (static_cast<double>(row[target]) - static_cast<double>(max_logit));
  }
  return loss;
}

#define TANDEM_INSTANTIATE_ELEMENTWISE_OPS(T)                                                          \
  template void embedding_forward<T>(T*, const T*, int64_t, int64_t, std::span<const int>, int64_t);   \
  template void embedding_backward<T>(T*, const T*, int64_t, int64_t, std::span<const int>, int64_t);  \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, T);                   \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t); \
  template void rope_forward<T>(T*, int64_t, int64_t, int64_t, int64_t, T);                            \
  template void rope_backward<T>(T*, int64_t, int64_t, int64_t, int64_t, T);                           \
  template void swiglu_forward<T>(T*, const T*, const T*, int64_t);                                    \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t);                     \
  template double cross_entropy<T>(T*, const T*, std::span<const int>, int64_t, int64_t, T);

TANDEM_INSTANTIATE_ELEMENTWISE_OPS(float)
TANDEM_INSTANTIATE_ELEMENTWISE_OPS(double)
#undef TANDEM_INSTANTIATE_ELEMENTWISE_OPS

}  // namespace tandem::train
