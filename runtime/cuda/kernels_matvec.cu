// Matrix-vector products for a few tokens (up to 16 at once: a multi-token
// decode step), each weight byte read once per forward, straight from its
// storage type (f32, bf16, Q8_0/Q4_0 in the split layout of q_layout.h). A
// single token usually takes kernels_gemv.cu's fused kernel instead; this
// file serves the rest: a warp per row pair for one token with f32/bf16
// weights (warp_rows_kernel), blocks of a few rows (Shape) whose threads
// split the row (matvec_kernel), or an element-wise fallback for rows that
// are not a multiple of 8.
//
// A thread's unit of work is a "chunk" of 8 weights: 32 bytes of f32, 16 of
// bf16, 8 int8 of a Q8_0 block, or 4 bytes of a Q4_0 block (its elements
// 4j..4j+3 in the low nibbles, 4j+16.. in the high ones). Consecutive threads
// take consecutive chunks, so loads cover contiguous memory; each thread
// first loads its next chunks of every row, then computes, to keep enough
// bytes in flight. Rows of an odd number of blocks are only 2-byte aligned,
// so quants are read as 16-bit words. Quants become floats by the exponent trick
// (0x4B000000 | q is 2^23 + q: one byte permute and one add, no int-to-float
// conversion, whose throughput would bound the kernel), and the block scale
// multiplies the 8-term partial sum once.
#include <cuda_fp16.h>

#include "runtime/cuda/cuda_kernels.h"
#include "runtime/cuda/weight_load.cuh"
#include "runtime/quant_blocks.h"

namespace tandem::cuda {
namespace {

// Rows per block, by tokens: every x load serves all of the block's rows, so
// with one token (x read from L2 far more often than weights: 4 bytes of x per
// 0.56 bytes of Q4_0 per row) a block takes 8 rows; with 16 tokens the
// accumulators (rows x tokens registers) allow 2.
template <int R, int TH, int U, bool BYPASS>
struct Shape {
  static constexpr int kRows = R;
  static constexpr int kThreads = TH;
  static constexpr int kUnroll = U;  // chunks per row loaded before computing
  static constexpr bool kBypassL1 = BYPASS;
};
constexpr int kGenericThreads = 128;
constexpr int kGenericRows = 2;

struct RowRef {
  const uint8_t* w;
  float* out;
  int64_t n_out, r;
  bool valid;
};

__device__ RowRef resolve_row(const MatvecArgs& a, int64_t global_row, size_t row_bytes) {
  int64_t total = 0;
  for (int i = 0; i < a.n_targets; ++i) total += a.targets[i].n_out;
  RowRef ref{};
  ref.valid = global_row < total;
  int64_t r = ref.valid ? global_row : total - 1;  // an idle row re-reads the last one
  for (int i = 0; i < a.n_targets; ++i) {
    if (r < a.targets[i].n_out) {
      ref.w = static_cast<const uint8_t*>(a.targets[i].w) + static_cast<size_t>(r) * row_bytes;
      ref.out = a.targets[i].out;
      ref.n_out = a.targets[i].n_out;
      ref.r = r;
      break;
    }
    r -= a.targets[i].n_out;
  }
  return ref;
}

__device__ inline float half_bits(uint16_t h) { return __half2float(__ushort_as_half(h)); }
// Weights are read once: past L1, which then keeps x for the block's rows.
template <bool kBypass>
__device__ inline uint4 load_stream(const uint4* p) {
  if (!kBypass) return __ldg(p);
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}
template <bool kBypass>
__device__ inline float4 load_stream(const float4* p) {
  if (!kBypass) return __ldg(p);
  float4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.f32 {%0, %1, %2, %3}, [%4];"
               : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w)
               : "l"(p));
  return r;
}

// Byte i of `bytes` as the float 2^23 + byte.
__device__ inline float magic_byte(uint32_t bytes, int i) {
  return __uint_as_float(__byte_perm(bytes, 0x4B000000u, 0x7540u + i));
}

// One chunk's raw bits, loaded first and decoded later.
template <WeightType T, bool kBypass>
struct Chunk;

template <bool kBypass>
struct Chunk<WeightType::kF32, kBypass> {
  float4 a, b;
  __device__ void load(const uint8_t* row, int64_t, int64_t c) {
    a = load_stream<kBypass>(reinterpret_cast<const float4*>(row) + 2 * c);
    b = load_stream<kBypass>(reinterpret_cast<const float4*>(row) + 2 * c + 1);
  }
  __device__ float scale() const { return 1.0f; }
  __device__ void decode(float (&v)[8]) const {
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  }
};

template <bool kBypass>
struct Chunk<WeightType::kBF16, kBypass> {
  uint4 q;
  __device__ void load(const uint8_t* row, int64_t, int64_t c) { q = load_stream<kBypass>(reinterpret_cast<const uint4*>(row) + c); }
  __device__ float scale() const { return 1.0f; }
  __device__ void decode(float (&v)[8]) const {
    const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = __uint_as_float(w[i] << 16);
      v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
};

template <bool kBypass>
struct Chunk<WeightType::kQ8_0, kBypass> {
  uint32_t lo, hi;
  uint16_t d;
  __device__ void load(const uint8_t* row, int64_t nb, int64_t c) {
    const auto* qs = reinterpret_cast<const uint16_t*>(row + (c >> 2) * 32 + (c & 3) * 8);
    d = __ldg(reinterpret_cast<const uint16_t*>(row + nb * 32) + (c >> 2));
    lo = __ldg(qs) | (static_cast<uint32_t>(__ldg(qs + 1)) << 16);
    hi = __ldg(qs + 2) | (static_cast<uint32_t>(__ldg(qs + 3)) << 16);
  }
  __device__ float scale() const { return half_bits(d); }
  __device__ void decode(float (&v)[8]) const {
    // int8 b -> unsigned b + 128 by flipping the sign bits, then 2^23 + 128 + b.
    const uint32_t l = lo ^ 0x80808080u, h = hi ^ 0x80808080u;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[i] = magic_byte(l, i) - 8388736.0f;
      v[4 + i] = magic_byte(h, i) - 8388736.0f;
    }
  }
};

template <bool kBypass>
struct Chunk<WeightType::kQ4_0, kBypass> {
  uint32_t q;
  uint16_t d;
  __device__ void load(const uint8_t* row, int64_t nb, int64_t c) {
    const auto* qs = reinterpret_cast<const uint16_t*>(row + (c >> 2) * 16 + (c & 3) * 4);
    d = __ldg(reinterpret_cast<const uint16_t*>(row + nb * 16) + (c >> 2));
    q = __ldg(qs) | (static_cast<uint32_t>(__ldg(qs + 1)) << 16);
  }
  __device__ float scale() const { return half_bits(d); }
  __device__ void decode(float (&v)[8]) const {
    const uint32_t lo = q & 0x0f0f0f0fu, hi = (q >> 4) & 0x0f0f0f0fu;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[i] = magic_byte(lo, i) - 8388616.0f;  // 2^23 + 8: value q - 8
      v[4 + i] = magic_byte(hi, i) - 8388616.0f;
    }
  }
};

// The 8 activations that multiply chunk c: contiguous, except for Q4_0 (see above).
template <WeightType T>
__device__ inline void load_x(const float* xt, int64_t c, float (&v)[8]) {
  const float* lo = T == WeightType::kQ4_0 ? xt + (c >> 2) * 32 + (c & 3) * 4 : xt + 8 * c;
  const float* hi = T == WeightType::kQ4_0 ? lo + 16 : lo + 4;
  const float4 a = *reinterpret_cast<const float4*>(lo);
  const float4 b = *reinterpret_cast<const float4*>(hi);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

// Sums acc over the block (warp shuffles, then shared memory) and writes the outputs.
template <int NT, int kRows, int kThreads>
__device__ void reduce_and_store(float (&acc)[kRows][NT], const RowRef (&rows)[kRows], int64_t tokens) {
  __shared__ float partial[kThreads / 32][kRows][NT];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float v = acc[r][t];
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0) partial[warp][r][t] = v;
    }
  __syncthreads();
  if (threadIdx.x < kRows * NT) {
    const int r = threadIdx.x / NT, t = threadIdx.x % NT;
    float v = 0;
    for (int w = 0; w < kThreads / 32; ++w) v += partial[w][r][t];
    if (t < tokens && rows[r].valid) rows[r].out[t * rows[r].n_out + rows[r].r] = v;
  }
}

template <int NT, class S, WeightType T>
__global__ void __launch_bounds__(S::kThreads) matvec_kernel(MatvecArgs a, size_t row_bytes) {
  constexpr int kRows = S::kRows, kThreads = S::kThreads, kUnroll = S::kUnroll;
  RowRef rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows[r] = resolve_row(a, static_cast<int64_t>(blockIdx.x) * kRows + r, row_bytes);
  float acc[kRows][NT] = {};
  const int64_t chunks = a.n_in / 8;
  for (int64_t base = threadIdx.x; base < chunks; base += kThreads * kUnroll) {
    Chunk<T, S::kBypassL1> w[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        if (base + u * kThreads < chunks) w[u][r].load(rows[r].w, a.n_in / 32, base + u * kThreads);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = base + u * kThreads;
      if (c >= chunks) break;
      float wv[kRows][8];
#pragma unroll
      for (int r = 0; r < kRows; ++r) w[u][r].decode(wv[r]);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t >= a.tokens) break;
        float x[8];
        load_x<T>(a.x + t * a.n_in, c, x);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          float sum = 0;
#pragma unroll
          for (int i = 0; i < 8; ++i) sum += wv[r][i] * x[i];
          acc[r][t] += sum * w[u][r].scale();
        }
      }
    }
  }
  reduce_and_store<NT, kRows, kThreads>(acc, rows, a.tokens);
}

// One token, f32/bf16 weights: each warp streams two rows on its own, lanes
// taking consecutive 16-byte chunks, with no block-wide reduction. Of the
// shapes measured on the H100 this was the fastest for plain types (8B bf16
// decode 117 tok/s against 85-109 for block-split rows and the shared-memory
// kernel, which wins for Q8_0/Q4_0).
template <WeightType T>
__global__ void __launch_bounds__(128) warp_rows_kernel(MatvecArgs a, size_t row_bytes) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * 4 + warp) * 2;
  RowRef rows[2];
  for (int r = 0; r < 2; ++r) rows[r] = resolve_row(a, first + r, row_bytes);
  float acc[2] = {};
  const int64_t chunks = a.n_in / 8;
#pragma unroll 2
  for (int64_t c = lane; c < chunks; c += 32) {
    Chunk<T, false> w[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) w[r].load(rows[r].w, 0, c);
    float x[8];
    load_x<T>(a.x, c, x);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float wv[8];
      w[r].decode(wv);
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[r] += wv[i] * x[i];
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float v = acc[r];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0 && rows[r].valid) rows[r].out[rows[r].r] = v;
  }
}

// Any row length and alignment (f32/bf16 rows not a multiple of 8): one element at a time.
template <int NT>
__global__ void __launch_bounds__(kGenericThreads) matvec_generic_kernel(MatvecArgs a, size_t row_bytes) {
  constexpr int kRows = kGenericRows, kThreads = kGenericThreads;
  RowRef rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows[r] = resolve_row(a, static_cast<int64_t>(blockIdx.x) * kRows + r, row_bytes);
  float acc[kRows][NT] = {};
  for (int64_t i = threadIdx.x; i < a.n_in; i += kThreads) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float wv = load_weight(rows[r].w, a.type, a.n_in, i);
#pragma unroll
      for (int t = 0; t < NT; ++t)
        if (t < a.tokens) acc[r][t] += wv * a.x[t * a.n_in + i];
    }
  }
  reduce_and_store<NT, kRows, kThreads>(acc, rows, a.tokens);
}

template <int NT, class S>
cudaError_t launch_shape(cudaStream_t s, const MatvecArgs& a, size_t row_bytes, int64_t rows) {
  const auto blocks = static_cast<unsigned>((rows + S::kRows - 1) / S::kRows);
  switch (a.type) {
    case WeightType::kF32: matvec_kernel<NT, S, WeightType::kF32><<<blocks, S::kThreads, 0, s>>>(a, row_bytes); break;
    case WeightType::kBF16: matvec_kernel<NT, S, WeightType::kBF16><<<blocks, S::kThreads, 0, s>>>(a, row_bytes); break;
    case WeightType::kQ8_0: matvec_kernel<NT, S, WeightType::kQ8_0><<<blocks, S::kThreads, 0, s>>>(a, row_bytes); break;
    case WeightType::kQ4_0: matvec_kernel<NT, S, WeightType::kQ4_0><<<blocks, S::kThreads, 0, s>>>(a, row_bytes); break;
  }
  return cudaGetLastError();
}

template <int NT>
cudaError_t launch(cudaStream_t s, const MatvecArgs& a, bool vector_path, size_t row_bytes, int64_t rows) {
  if (!vector_path) {
    const auto blocks = static_cast<unsigned>((rows + kGenericRows - 1) / kGenericRows);
    matvec_generic_kernel<NT><<<blocks, kGenericThreads, 0, s>>>(a, row_bytes);
    return cudaGetLastError();
  }
  // Shapes from a sweep of 7 on the H100 (docs/benchmarks.md): small blocks won.
  if constexpr (NT == 1) {
    if (a.type == WeightType::kF32 || a.type == WeightType::kBF16) {
      const auto blocks = static_cast<unsigned>((rows + 7) / 8);
      if (a.type == WeightType::kF32) warp_rows_kernel<WeightType::kF32><<<blocks, 128, 0, s>>>(a, row_bytes);
      else warp_rows_kernel<WeightType::kBF16><<<blocks, 128, 0, s>>>(a, row_bytes);
      return cudaGetLastError();
    }
    return launch_shape<NT, Shape<2, 64, 4, true>>(s, a, row_bytes, rows);
  } else if constexpr (NT == 4) {
    return launch_shape<NT, Shape<4, 128, 2, true>>(s, a, row_bytes, rows);
  } else {
    return launch_shape<NT, Shape<2, 128, 2, true>>(s, a, row_bytes, rows);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

cudaError_t matvec(cudaStream_t s, const MatvecArgs& a) {
  int64_t rows = 0;
  bool vector_path = a.n_in % 8 == 0 && aligned16(a.x);
  size_t row_bytes = 0;
  switch (a.type) {
    case WeightType::kF32: row_bytes = a.n_in * 4; break;
    case WeightType::kBF16: row_bytes = a.n_in * 2; break;
    case WeightType::kQ8_0: row_bytes = a.n_in / 32 * quant::kQ8Bytes; break;
    case WeightType::kQ4_0: row_bytes = a.n_in / 32 * quant::kQ4Bytes; break;
  }
  for (int i = 0; i < a.n_targets; ++i) {
    rows += a.targets[i].n_out;
    const bool plain = a.type == WeightType::kF32 || a.type == WeightType::kBF16;
    if (plain && !aligned16(a.targets[i].w)) vector_path = false;
  }
  if (a.tokens <= 1) return launch<1>(s, a, vector_path, row_bytes, rows);
  if (a.tokens <= 4) return launch<4>(s, a, vector_path, row_bytes, rows);
  return launch<16>(s, a, vector_path, row_bytes, rows);
}

}  // namespace tandem::cuda
