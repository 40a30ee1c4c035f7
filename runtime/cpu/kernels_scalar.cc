// Portable reference kernels: plain C++, no intrinsics, so they build on any
// target. Sums use four float accumulators: independent chains give the CPU
// (and the auto-vectoriser) parallelism, and shorter chains round less.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "runtime/cpu/attention_rows.h"
#include "runtime/cpu/kernels_internal.h"
#include "runtime/quant_blocks.h"

namespace tandem::cpu {

int64_t matmul_token_block(int64_t n_in) {
  constexpr int64_t kBlockBytes = 256 * 1024;  // fits in the L2 of the cores we target
  const int64_t bytes_per_token = std::max<int64_t>(n_in, 1) * static_cast<int64_t>(sizeof(float));
  return std::max<int64_t>(4, kBlockBytes / bytes_per_token / 4 * 4);
}

namespace scalar {
namespace {

// One weight row against kTokens token rows (kTokens in 1..4) in one pass over
// the row; token t's dot product lands in y[t * n_out]. Four partial sums per
// token, like dot(), so compilers can keep them in one SIMD register each.
template <int kTokens>
void row_times_tokens(float* y, const float* x, const float* w_row, int64_t n_in, int64_t n_out) {
  float acc[kTokens][4] = {};
  int64_t i = 0;
  for (; i + 4 <= n_in; i += 4) {
    for (int t = 0; t < kTokens; ++t) {
      const float* x_t = x + t * n_in + i;
      for (int lane = 0; lane < 4; ++lane) acc[t][lane] += w_row[i + lane] * x_t[lane];
    }
  }
  for (; i < n_in; ++i) {
    for (int t = 0; t < kTokens; ++t) acc[t][0] += w_row[i] * x[t * n_in + i];
  }
  for (int t = 0; t < kTokens; ++t) y[t * n_out] = (acc[t][0] + acc[t][1]) + (acc[t][2] + acc[t][3]);
}

float sum_of(const float* x, int64_t n) {
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += x[i];
    s1 += x[i + 1];
    s2 += x[i + 2];
    s3 += x[i + 3];
  }
  for (; i < n; ++i) s0 += x[i];
  return (s0 + s1) + (s2 + s3);
}

// A KV cache value as a float: f32 as it is, f16 (its bits) widened, exactly.
inline float widen(float v) { return v; }
inline float widen(uint16_t h) { return quant::f32_from_f16(h); }

// dot() and axpy(), and with f16 b or x the same arithmetic on widened values.
template <class T>
float dot_of(const float* a, const T* b, int64_t n) {
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * widen(b[i]);
    s1 += a[i + 1] * widen(b[i + 1]);
    s2 += a[i + 2] * widen(b[i + 2]);
    s3 += a[i + 3] * widen(b[i + 3]);
  }
  for (; i < n; ++i) s0 += a[i] * widen(b[i]);
  return (s0 + s1) + (s2 + s3);
}

template <class T>
void axpy_of(float* y, float a, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * widen(x[i]);
}

}  // namespace

float dot(const float* a, const float* b, int64_t n) { return dot_of(a, b, n); }

void matmul_rows(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in,
                 int64_t n_out, int64_t row_begin, int64_t row_end) {
  if (n_tokens == 1) {  // matvec: one pass per row, four accumulators
    for (int64_t r = row_begin; r < row_end; ++r) y[r] = dot(x, w + r * n_in, n_in);
    return;
  }
  const int64_t block = matmul_token_block(n_in);
  for (int64_t t0 = 0; t0 < n_tokens; t0 += block) {
    const int64_t t1 = std::min(n_tokens, t0 + block);
    for (int64_t r = row_begin; r < row_end; ++r) {
      const float* w_row = w + r * n_in;
      for (int64_t t = t0; t < t1; t += 4) {
        float* y_t = y + t * n_out + r;
        const float* x_t = x + t * n_in;
        switch (std::min<int64_t>(4, t1 - t)) {
          case 4: row_times_tokens<4>(y_t, x_t, w_row, n_in, n_out); break;
          case 3: row_times_tokens<3>(y_t, x_t, w_row, n_in, n_out); break;
          case 2: row_times_tokens<2>(y_t, x_t, w_row, n_in, n_out); break;
          default: row_times_tokens<1>(y_t, x_t, w_row, n_in, n_out); break;
        }
      }
    }
  }
}

void axpy(float* y, float a, const float* x, int64_t n) { axpy_of(y, a, x, n); }

void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps) {
  const float sum_squares = dot(x, x, n);
  const float scale = 1.0f / std::sqrt(sum_squares / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void softmax(float* x, int64_t n) {
  // Subtracting the max keeps every exp in (0, 1]: no overflow for any input.
  float max_value = x[0];
  for (int64_t i = 1; i < n; ++i) max_value = std::max(max_value, x[i]);
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i] - max_value);
  const float inv_sum = 1.0f / sum_of(x, n);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv_sum;
}

namespace {

// The angle in double: pos * freq reaches thousands of radians, where a
// float angle would already be off by ~1e-4 before cos/sin see it.
inline void pair_angle(float& c, float& s, int64_t pos, double inv_freq) {
  const double angle = static_cast<double>(pos) * inv_freq;
  c = static_cast<float>(std::cos(angle));
  s = static_cast<float>(std::sin(angle));
}

// The one copy of the rotation's arithmetic, kept out of line: inlined into
// two different loops, the compiler may fuse a different product into an
// FMA in each (aarch64 contracts by default), and rope_rotate() after
// rope_angles() would no longer be rope_interleaved() bit for bit. `v` is
// head 0's first pair to turn; each head turns n_pairs pairs.
[[gnu::noinline]] void rotate_pairs(float* v, int64_t n_heads, int64_t head_dim, int64_t n_pairs, const float* cos,
                                    const float* sin) {
  for (int64_t h = 0; h < n_heads; ++h) {
    float* head = v + h * head_dim;
    for (int64_t j = 0; j < n_pairs; ++j) {
      const float v0 = head[2 * j], v1 = head[2 * j + 1];
      head[2 * j] = v0 * cos[j] - v1 * sin[j];
      head[2 * j + 1] = v0 * sin[j] + v1 * cos[j];
    }
  }
}

}  // namespace

void rope_angles(float* cos, float* sin, int64_t pos, int64_t pairs, const double* inv_freq) {
  for (int64_t j = 0; j < pairs; ++j) pair_angle(cos[j], sin[j], pos, inv_freq[j]);
}

void rope_rotate(float* v, int64_t n_heads, int64_t head_dim, const float* cos, const float* sin) {
  rotate_pairs(v, n_heads, head_dim, head_dim / 2, cos, sin);
}

void rope_interleaved(float* v, int64_t n_heads, int64_t head_dim, int64_t pos, const double* inv_freq) {
  // Each pair's cos/sin is shared by all heads: computed once per pair, a
  // stack-sized range of pairs at a time (every head_dim up to 512 in one).
  constexpr int64_t kPairsAtOnce = 256;
  float cos[kPairsAtOnce], sin[kPairsAtOnce];
  for (int64_t j0 = 0; j0 < head_dim / 2; j0 += kPairsAtOnce) {
    const int64_t n = std::min(kPairsAtOnce, head_dim / 2 - j0);
    rope_angles(cos, sin, pos, n, inv_freq + j0);
    rotate_pairs(v + 2 * j0, n_heads, head_dim, n, cos, sin);
  }
}

void swiglu(float* out, const float* gate, const float* up, int64_t n) {
  // For gate << 0, exp(-gate) overflows to inf and silu is -0: the right limit.
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

namespace {

// attend_heads' arithmetic: this file's dot, softmax and axpy.
struct Ops {
  template <class T>
  static float dot(const float* a, const T* b, int64_t n) { return dot_of(a, b, n); }
  static void softmax(float* x, int64_t n) { scalar::softmax(x, n); }
  template <class T>
  static void axpy(float* y, float a, const T* x, int64_t n) { axpy_of(y, a, x, n); }
  static void prefetch(const void* p) { __builtin_prefetch(p); }
};

}  // namespace

void attention_heads(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t n_pos,
                     const AttentionHeads& heads, float* scratch) {
  attend_heads<Ops>(out, q, k_cache, v_cache, n_pos, ContiguousRows{n_pos}, heads, scratch);
}

void attention_heads_paged(float* out, const float* q, const float* k_pool, const float* v_pool, int64_t n_pos,
                           const int32_t* block_table, int64_t block_size, const AttentionHeads& heads,
                           float* scratch) {
  attend_heads<Ops>(out, q, k_pool, v_pool, n_pos, PagedRows{n_pos, block_table, block_size}, heads, scratch);
}

void attention_heads_paged_f16(float* out, const float* q, const uint16_t* k_pool, const uint16_t* v_pool,
                               int64_t n_pos, const int32_t* block_table, int64_t block_size,
                               const AttentionHeads& heads, float* scratch) {
  attend_heads<Ops>(out, q, k_pool, v_pool, n_pos, PagedRows{n_pos, block_table, block_size}, heads, scratch);
}

void f16_from_f32_row(uint16_t* out, const float* in, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = quant::f16_from_f32(in[i]);
}

double fma_loop(int64_t iterations) {
  // A multiply and an add (2 FLOPs) per chain and round, whether or not the
  // compiler fuses them.
  constexpr int kChains = 8;
  float acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = static_cast<float>(c);
  for (int64_t i = 0; i < iterations; ++i) {
    for (float& a : acc) a = a * 0.999f + 0.001f;
  }
  float sum = 0.0f;
  for (const float a : acc) sum += a;
  volatile float kept = sum;  // used, so the loop must run
  (void)kept;
  return 2.0 * kChains * static_cast<double>(iterations);
}

}  // namespace scalar
}  // namespace tandem::cpu
