// Single-token matrix-vector product with Q8_0/Q4_0 weights (batch-1 decode,
// the bulk of a decode step's time): weight rows and the matching activations
// stream into shared memory through cp.async in 16-byte pieces,
// double-buffered (the next tile is in flight while the current one is
// multiplied), so the memory system sees large aligned reads although the
// blocks are 34/18 bytes; they are decoded from shared memory, where 2-byte
// reads cost little. Used when every row starts 16-byte aligned (row bytes a
// multiple of 16); kernels_matvec.cu otherwise, and for f32/bf16, where a
// warp per row pair measured faster.
#include <cuda_fp16.h>

#include <algorithm>

#include "runtime/cuda/cuda_kernels.h"
#include "runtime/quant_blocks.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 128;

template <WeightType T>
struct Tile {
  // Weights per tile and the bytes they take per row: ~1 KiB, so that with
  // the tile's activations a block needs ~17-25 KiB of shared memory.
  static constexpr int kElems = T == WeightType::kQ4_0 ? 2048 : 1024;
  static constexpr int kBytes = T == WeightType::kQ4_0 ? 1152 : 1088;
};

__device__ inline void copy16(void* smem, const void* global) {
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(global));
}
__device__ inline void commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ inline void wait_pending() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }

__device__ inline float magic_byte(uint32_t bytes, int i) {
  return __uint_as_float(__byte_perm(bytes, 0x4B000000u, 0x7540u + i));
}
__device__ inline uint32_t smem_u32_2aligned(const uint8_t* p) {
  const auto* h = reinterpret_cast<const uint16_t*>(p);
  return h[0] | (static_cast<uint32_t>(h[1]) << 16);
}

// The 8 activations of chunk c (x: the tile's, in shared memory): contiguous, but for Q4_0's nibble order.
template <WeightType T>
__device__ inline void load_x(const float* x, int c, float4& a, float4& b) {
  const float* xl = T == WeightType::kQ4_0 ? x + (c >> 2) * 32 + (c & 3) * 4 : x + 8 * c;
  a = *reinterpret_cast<const float4*>(xl);
  b = *reinterpret_cast<const float4*>(xl + (T == WeightType::kQ4_0 ? 16 : 4));
}

// Dot of chunk c (8 weights) of a tile in shared memory with its activations.
template <WeightType T>
__device__ inline float chunk_dot(const uint8_t* tile, int c, const float4& a, const float4& b) {
  float v[8];
  float scale = 1.0f;
  if constexpr (T == WeightType::kQ8_0) {
    const uint8_t* block = tile + (c >> 2) * quant::kQ8Bytes;
    scale = __half2float(__ushort_as_half(*reinterpret_cast<const uint16_t*>(block)));
    const uint8_t* qs = block + 2 + (c & 3) * 8;
    const uint32_t lo = smem_u32_2aligned(qs) ^ 0x80808080u, hi = smem_u32_2aligned(qs + 4) ^ 0x80808080u;
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = magic_byte(lo, i) - 8388736.0f, v[4 + i] = magic_byte(hi, i) - 8388736.0f;
  } else {
    const uint8_t* block = tile + (c >> 2) * quant::kQ4Bytes;
    scale = __half2float(__ushort_as_half(*reinterpret_cast<const uint16_t*>(block)));
    const uint32_t q = smem_u32_2aligned(block + 2 + (c & 3) * 4);
    const uint32_t lo = q & 0x0f0f0f0fu, hi = (q >> 4) & 0x0f0f0f0fu;
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = magic_byte(lo, i) - 8388616.0f, v[4 + i] = magic_byte(hi, i) - 8388616.0f;
  }
  const float sum = v[0] * a.x + v[1] * a.y + v[2] * a.z + v[3] * a.w + v[4] * b.x + v[5] * b.y + v[6] * b.z + v[7] * b.w;
  return sum * scale;
}

template <WeightType T, int kRows>
__global__ void __launch_bounds__(kThreads) staged_kernel(MatvecArgs a, int64_t row_bytes) {
  // The tile's activations ride along: read by every row, they would
  // otherwise come from L2 again and again (the carve-out leaves L1 small).
  __shared__ __align__(16) uint8_t tiles[2][kRows][Tile<T>::kBytes];
  __shared__ __align__(16) float xs[2][Tile<T>::kElems];
  const uint8_t* rows[kRows];
  float* outs[kRows];
  int64_t out_index[kRows];
  bool valid[kRows];
  int64_t total = 0;
  for (int i = 0; i < a.n_targets; ++i) total += a.targets[i].n_out;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    int64_t g = static_cast<int64_t>(blockIdx.x) * kRows + r;
    valid[r] = g < total;
    if (!valid[r]) g = total - 1;
    for (int i = 0; i < a.n_targets; ++i) {
      if (g < a.targets[i].n_out) {
        rows[r] = static_cast<const uint8_t*>(a.targets[i].w) + g * row_bytes;
        outs[r] = a.targets[i].out;
        out_index[r] = g;
        break;
      }
      g -= a.targets[i].n_out;
    }
  }
  const int64_t tiles_n = (a.n_in + Tile<T>::kElems - 1) / Tile<T>::kElems;
  auto issue = [&](int64_t tile, int stage) {
    const int64_t offset = tile * Tile<T>::kBytes;
    const int bytes = static_cast<int>(min(static_cast<int64_t>(Tile<T>::kBytes), row_bytes - offset));
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      for (int piece = threadIdx.x; piece < bytes / 16; piece += kThreads)
        copy16(&tiles[stage][r][piece * 16], rows[r] + offset + piece * 16);
    const int64_t first = tile * Tile<T>::kElems;
    const int elems = static_cast<int>(min(static_cast<int64_t>(Tile<T>::kElems), a.n_in - first));
    for (int i = threadIdx.x; i < elems / 4; i += kThreads) copy16(&xs[stage][4 * i], a.x + first + 4 * i);
    commit();
  };
  float acc[kRows] = {};
  issue(0, 0);
  for (int64_t tile = 0; tile < tiles_n; ++tile) {
    const int stage = static_cast<int>(tile & 1);
    if (tile + 1 < tiles_n) {
      issue(tile + 1, stage ^ 1);
      wait_pending<1>();
    } else {
      wait_pending<0>();
    }
    __syncthreads();
    const int64_t elems = min(static_cast<int64_t>(Tile<T>::kElems), a.n_in - tile * Tile<T>::kElems);
    const float* x = xs[stage];
    for (int c = threadIdx.x; c < elems / 8; c += kThreads) {
      float4 xa, xb;
      load_x<T>(x, c, xa, xb);
#pragma unroll
      for (int r = 0; r < kRows; ++r) acc[r] += chunk_dot<T>(tiles[stage][r], c, xa, xb);
    }
    __syncthreads();  // the stage is refilled two tiles later
  }
  __shared__ float partial[kThreads / 32][kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    float v = acc[r];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32][r] = v;
  }
  __syncthreads();
  if (threadIdx.x < kRows && valid[threadIdx.x]) {
    float v = 0;
    for (int w = 0; w < kThreads / 32; ++w) v += partial[w][threadIdx.x];
    outs[threadIdx.x][out_index[threadIdx.x]] = v;
  }
}

// Blocks of this kernel resident on the whole GPU at once (asked once).
template <WeightType T, int kRows>
int64_t resident_blocks() {
  static const int64_t n = [] {
    int device = 0, sms = 0, per_sm = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, staged_kernel<T, kRows>, kThreads, 0) != cudaSuccess)
      return int64_t{1};
    return std::max<int64_t>(1, int64_t{sms} * per_sm);
  }();
  return n;
}

// Each block handles its rows start to end, so a grid a little over a whole
// number of waves leaves most of the GPU idle in the last one (6144 q/k/v rows
// in blocks of 4 were 1.06 waves on the H100). Of 4 or 2 rows per block, take
// the one with the fewer row-waves (waves x rows per block); 4 on ties, as
// each activation read then serves more rows.
template <WeightType T>
void launch(cudaStream_t s, const MatvecArgs& a, int64_t row_bytes, int64_t rows) {
  const int64_t blocks4 = (rows + 3) / 4, blocks2 = (rows + 1) / 2;
  const int64_t cost4 = (blocks4 + resident_blocks<T, 4>() - 1) / resident_blocks<T, 4>() * 4;
  const int64_t cost2 = (blocks2 + resident_blocks<T, 2>() - 1) / resident_blocks<T, 2>() * 2;
  if (cost2 < cost4)
    staged_kernel<T, 2><<<static_cast<unsigned>(blocks2), kThreads, 0, s>>>(a, row_bytes);
  else
    staged_kernel<T, 4><<<static_cast<unsigned>(blocks4), kThreads, 0, s>>>(a, row_bytes);
}

}  // namespace

bool matvec_staged(cudaStream_t s, const MatvecArgs& a, size_t row_bytes, cudaError_t* err) {
  if (a.tokens != 1 || row_bytes % 16 != 0 || (reinterpret_cast<uintptr_t>(a.x) & 15) != 0) return false;
  // Plain types do better with a warp per row pair (kernels_matvec.cu).
  if (a.type != WeightType::kQ8_0 && a.type != WeightType::kQ4_0) return false;
  int64_t rows = 0;
  for (int i = 0; i < a.n_targets; ++i) {
    if ((reinterpret_cast<uintptr_t>(a.targets[i].w) & 15) != 0) return false;
    rows += a.targets[i].n_out;
  }
  const auto rb = static_cast<int64_t>(row_bytes);
  switch (a.type) {
    case WeightType::kQ8_0: launch<WeightType::kQ8_0>(s, a, rb, rows); break;
    default: launch<WeightType::kQ4_0>(s, a, rb, rows); break;
  }
  *err = cudaGetLastError();
  return true;
}

}  // namespace tandem::cuda
