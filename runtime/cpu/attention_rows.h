// Where attention's positions and heads live in a KV cache, and the one
// attention loop every ISA runs over them (kernels_scalar.cc, kernels_avx2.cc,
// kernels_neon.cc instantiate attend_heads with their own arithmetic).
// Plain C++ with no call to a std:: inline function: every ISA file includes
// it under its own flags, and an instantiation with an ISA file's Ops (a type
// in its anonymous namespace) stays private to that file.
#pragma once

#include <cstdint>

namespace tandem::cpu {

// The query heads of one token that one call serves: n_heads heads of
// head_dim values, consecutive in q and out; query head j reads KV head
// j / group, KV heads head_dim floats apart within a cache row, rows
// kv_stride floats apart.
struct AttentionHeads {
  int64_t n_heads = 1;
  int64_t group = 1;
  int64_t head_dim = 0;
  int64_t kv_stride = 0;
};

// Each layout's for_each_run(fn) calls fn(first, count, row0, next_row0) for
// each run of positions [first, first + count) held in the consecutive cache
// rows row0, row0 + 1, ..., in position order; next_row0 is the next run's
// first row, or -1 after the last run.
struct ContiguousRows {
  // One run: the hardware prefetcher follows it without help.
  static constexpr bool kJumps = false;
  int64_t n_pos;
  template <class Fn>
  void for_each_run(Fn&& fn) const {
    fn(int64_t{0}, n_pos, int64_t{0}, int64_t{-1});
  }
};

// Position p at pool row block_table[p / block_size] * block_size + p % block_size,
// walked block by block so the division happens once per block.
struct PagedRows {
  // Blocks sit anywhere in the pool, and the hardware prefetcher does not
  // follow a jump from one to the next.
  static constexpr bool kJumps = true;
  int64_t n_pos;
  const int32_t* block_table;
  int64_t block_size;
  template <class Fn>
  void for_each_run(Fn&& fn) const {
    for (int64_t first = 0, b = 0; first < n_pos; first += block_size, ++b) {
      const int64_t count = n_pos - first < block_size ? n_pos - first : block_size;
      const int64_t next = first + block_size < n_pos ? static_cast<int64_t>(block_table[b + 1]) * block_size : -1;
      fn(first, count, static_cast<int64_t>(block_table[b]) * block_size, next);
    }
  }
};

// For every head j of `heads`:
//   score[p] = Ops::dot(q_j, k_j(p), head_dim) / sqrt(head_dim)
//   out_j    = the Ops::axpy of softmax(score)[p] * v_j(p) in position order, from 0
// Positions are the outer loop and heads the inner one, so each cache row is
// read once, front to back, for all heads: a head-by-head walk reads a few
// lines of every row per head, a stride the prefetcher follows badly (2x
// slower on the dev VM; docs/benchmarks.md, "Attention reads whole rows").
// Where runs jump (a paged cache), the next run's rows are requested while
// this one's are used: position i of the next block with position i of this
// one, and V's first block with K's last. scores[j * n_pos + p] holds head
// j's softmax weights afterwards. out may alias q: it is written last.
//
// T is the cache's element: float, or uint16_t holding f16 bits. Ops has
// static dot(a, b, n), softmax(x, n), axpy(y, a, x, n) (the ISA's own
// arithmetic, so the result is bit for bit their composition; with f16 rows,
// the same arithmetic on the widened values) and prefetch(p) (one line, a
// block of rows ahead of its use: into L2 where the ISA can say so).
template <class Ops, class Rows, class T>
void attend_heads(float* out, const float* q, const T* k_base, const T* v_base, int64_t n_pos,
                  const Rows& rows, const AttentionHeads& heads, float* scratch) {
  // scratch: attention_scratch_floats() (kernels.h) floats.
  const int64_t n_heads = heads.n_heads, group = heads.group, head_dim = heads.head_dim;
  const int64_t kv_stride = heads.kv_stride;
  const float scale = 1.0f / __builtin_sqrtf(static_cast<float>(head_dim));
  // The part of a row these heads read: their KV heads, from k_base / v_base.
  const int64_t row_values = (n_heads + group - 1) / group * head_dim;
  const auto prefetch_row = [&](const T* row) {
    constexpr int64_t kLineValues = 64 / static_cast<int64_t>(sizeof(T));
    for (int64_t f = 0; f < row_values; f += kLineValues) Ops::prefetch(row + f);
    Ops::prefetch(row + row_values - 1);
  };
  float* scores = scratch;
  float* sums = scratch + n_heads * n_pos;

  int64_t first_row0 = 0;
  rows.for_each_run([&](int64_t first, int64_t count, int64_t row0, int64_t next_row0) {
    if (first == 0) first_row0 = row0;
    const T* k = k_base + row0 * kv_stride;
    const T* ahead = nullptr;
    if constexpr (Rows::kJumps) {
      ahead = next_row0 >= 0 ? k_base + next_row0 * kv_stride : v_base + first_row0 * kv_stride;
    }
    for (int64_t i = 0; i < count; ++i, k += kv_stride) {
      if (ahead != nullptr) prefetch_row(ahead + i * kv_stride);
      for (int64_t j = 0; j < n_heads; ++j) {
        scores[j * n_pos + first + i] = Ops::dot(q + j * head_dim, k + j / group * head_dim, head_dim) * scale;
      }
    }
  });
  for (int64_t j = 0; j < n_heads; ++j) Ops::softmax(scores + j * n_pos, n_pos);

  for (int64_t i = 0; i < n_heads * head_dim; ++i) sums[i] = 0.0f;
  rows.for_each_run([&](int64_t first, int64_t count, int64_t row0, int64_t next_row0) {
    const T* v = v_base + row0 * kv_stride;
    const T* ahead = Rows::kJumps && next_row0 >= 0 ? v_base + next_row0 * kv_stride : nullptr;
    for (int64_t i = 0; i < count; ++i, v += kv_stride) {
      if (ahead != nullptr) prefetch_row(ahead + i * kv_stride);
      for (int64_t j = 0; j < n_heads; ++j) {
        Ops::axpy(sums + j * head_dim, scores[j * n_pos + first + i], v + j / group * head_dim, head_dim);
      }
    }
  });
  for (int64_t i = 0; i < n_heads * head_dim; ++i) out[i] = sums[i];
}

}  // namespace tandem::cpu
