// Matrix-vector products for decode (and up to 16 tokens at once): each warp
// computes two output rows for every token, so each weight byte is read once
// per forward, straight from its storage type (f32, bf16, ggml Q8_0/Q4_0).
//
// A lane's unit of work is a "chunk" of 8 weights: 16 bytes of bf16, 8 int8
// of a Q8_0 block, or 4 bytes of a Q4_0 block (its elements 4j..4j+3 in the
// low nibbles, 4j+16.. in the high ones). Consecutive lanes take consecutive
// chunks, so a warp's loads cover contiguous memory. Q blocks are 34 and 18
// bytes, only 2-byte aligned, so their quants are read as 16-bit words.
#include "runtime/cuda/cuda_kernels.h"
#include "runtime/cuda/weight_load.cuh"
#include "runtime/quant_blocks.h"

namespace tandem::cuda {
namespace {

constexpr int kWarps = 4;       // per block
constexpr int kRowsPerWarp = 2;  // each x load serves two weight rows

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

__device__ inline float lo_bf16(uint32_t u) { return __uint_as_float(u << 16); }
__device__ inline float hi_bf16(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }

template <WeightType T>
__device__ inline void load_chunk(const uint8_t* row, int64_t c, float (&v)[8]) {
  if constexpr (T == WeightType::kF32) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(row) + 2 * c);
    const float4 b = __ldg(reinterpret_cast<const float4*>(row) + 2 * c + 1);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else if constexpr (T == WeightType::kBF16) {
    const uint4 q = __ldg(reinterpret_cast<const uint4*>(row) + c);
    v[0] = lo_bf16(q.x), v[1] = hi_bf16(q.x), v[2] = lo_bf16(q.y), v[3] = hi_bf16(q.y);
    v[4] = lo_bf16(q.z), v[5] = hi_bf16(q.z), v[6] = lo_bf16(q.w), v[7] = hi_bf16(q.w);
  } else if constexpr (T == WeightType::kQ8_0) {
    const auto* block = reinterpret_cast<const uint16_t*>(row + (c / 4) * quant::kQ8Bytes);
    const float d = quant::f32_from_f16(__ldg(block));
    const uint16_t* qs = block + 1 + (c % 4) * 4;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint16_t pair = __ldg(qs + i);
      v[2 * i] = static_cast<float>(static_cast<int8_t>(pair & 0xff)) * d;
      v[2 * i + 1] = static_cast<float>(static_cast<int8_t>(pair >> 8)) * d;
    }
  } else {
    const auto* block = reinterpret_cast<const uint16_t*>(row + (c / 4) * quant::kQ4Bytes);
    const float d = quant::f32_from_f16(__ldg(block));
    const uint32_t q = static_cast<uint32_t>(__ldg(block + 1 + (c % 4) * 2)) |
                       (static_cast<uint32_t>(__ldg(block + 2 + (c % 4) * 2)) << 16);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[i] = static_cast<float>(static_cast<int>((q >> (8 * i)) & 0xf) - 8) * d;
      v[4 + i] = static_cast<float>(static_cast<int>((q >> (8 * i + 4)) & 0xf) - 8) * d;
    }
  }
}

// The 8 activations that multiply chunk c: contiguous, except for Q4_0 (see above).
template <WeightType T>
__device__ inline void load_x(const float* xt, int64_t c, float (&v)[8]) {
  const float* lo = T == WeightType::kQ4_0 ? xt + (c / 4) * 32 + (c % 4) * 4 : xt + 8 * c;
  const float* hi = T == WeightType::kQ4_0 ? lo + 16 : lo + 4;
  const float4 a = *reinterpret_cast<const float4*>(lo);
  const float4 b = *reinterpret_cast<const float4*>(hi);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

template <int NT>
__device__ inline void reduce_and_store(float (&acc)[kRowsPerWarp][NT], const RowRef (&rows)[kRowsPerWarp],
                                        int64_t tokens, int lane) {
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float v = acc[r][t];
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0 && t < tokens && rows[r].valid) rows[r].out[t * rows[r].n_out + rows[r].r] = v;
    }
  }
}

template <int NT, WeightType T>
__global__ void __launch_bounds__(kWarps * 32) matvec_kernel(MatvecArgs a, size_t row_bytes) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * kRowsPerWarp;
  RowRef rows[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) rows[r] = resolve_row(a, first + r, row_bytes);
  float acc[kRowsPerWarp][NT] = {};
  const int64_t chunks = a.n_in / 8;
#pragma unroll 2
  for (int64_t c = lane; c < chunks; c += 32) {
    float w[kRowsPerWarp][8];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) load_chunk<T>(rows[r].w, c, w[r]);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t < a.tokens) {
        float x[8];
        load_x<T>(a.x + t * a.n_in, c, x);
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[r][t] += w[r][i] * x[i];
      }
    }
  }
  reduce_and_store<NT>(acc, rows, a.tokens, lane);
}

// Any row length and alignment (f32/bf16 rows not a multiple of 8): one element at a time.
template <int NT>
__global__ void __launch_bounds__(kWarps * 32) matvec_generic_kernel(MatvecArgs a, size_t row_bytes) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * kRowsPerWarp;
  RowRef rows[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) rows[r] = resolve_row(a, first + r, row_bytes);
  float acc[kRowsPerWarp][NT] = {};
  for (int64_t i = lane; i < a.n_in; i += 32) {
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const float wv = load_weight(rows[r].w, a.type, i);
#pragma unroll
      for (int t = 0; t < NT; ++t)
        if (t < a.tokens) acc[r][t] += wv * a.x[t * a.n_in + i];
    }
  }
  reduce_and_store<NT>(acc, rows, a.tokens, lane);
}

template <int NT>
cudaError_t launch(cudaStream_t s, const MatvecArgs& a, bool vector_path, size_t row_bytes, unsigned blocks) {
  if (!vector_path) {
    matvec_generic_kernel<NT><<<blocks, kWarps * 32, 0, s>>>(a, row_bytes);
    return cudaGetLastError();
  }
  switch (a.type) {
    case WeightType::kF32: matvec_kernel<NT, WeightType::kF32><<<blocks, kWarps * 32, 0, s>>>(a, row_bytes); break;
    case WeightType::kBF16: matvec_kernel<NT, WeightType::kBF16><<<blocks, kWarps * 32, 0, s>>>(a, row_bytes); break;
    case WeightType::kQ8_0: matvec_kernel<NT, WeightType::kQ8_0><<<blocks, kWarps * 32, 0, s>>>(a, row_bytes); break;
    case WeightType::kQ4_0: matvec_kernel<NT, WeightType::kQ4_0><<<blocks, kWarps * 32, 0, s>>>(a, row_bytes); break;
  }
  return cudaGetLastError();
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
  const unsigned blocks = static_cast<unsigned>((rows + kWarps * kRowsPerWarp - 1) / (kWarps * kRowsPerWarp));
  if (a.tokens <= 1) return launch<1>(s, a, vector_path, row_bytes, blocks);
  if (a.tokens <= 4) return launch<4>(s, a, vector_path, row_bytes, blocks);
  return launch<16>(s, a, vector_path, row_bytes, blocks);
}

}  // namespace tandem::cuda
