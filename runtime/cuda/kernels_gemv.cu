// Single-token matrix-vector products (batch-1 decode: a step's bulk) with
// what surrounds them in a layer fused in: the RMSNorm of the input, the
// residual add or the SwiGLU of the output. Fewer, larger kernels matter
// because an 8B Q4_0 layer streams its weights in ~60 us on an H100, and every
// extra dependent kernel costs a few microseconds of drain and launch.
//
// A block first stages the (normalized) activations in shared memory: f32 for
// f32/bf16 weights, 8-bit per 32-element block (scale d and d * sum of the
// quants) for Q8_0/Q4_0, whose products are then integer dot products (dp4a)
// on quants read 16 bytes at a time from the split layout (q_layout.h), as
// llama.cpp's MMVQ kernels do. The first weight loads are issued before the
// staging, so the activations' latency hides behind them. Each warp owns R
// rows (with SwiGLU: R gate/up row pairs) and streams them with U loads in
// flight per row, double-buffered.
#include <cuda_fp16.h>

#include <algorithm>

#include "runtime/cuda/cuda_kernels.h"
#include "runtime/cuda/q_layout.h"

namespace tandem::cuda {
namespace {

// One lane's unit of a row: 16 bytes of f32 (4 weights) or bf16 (8), or one
// Q4_0 (32 weights, 16 bytes of quants) or Q8_0 block (32 weights, 32 bytes).
template <WeightType T>
struct Unit;

__device__ inline uint4 load16(const void* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}
__device__ inline float half_bits(uint16_t h) { return __half2float(__ushort_as_half(h)); }

template <>
struct Unit<WeightType::kF32> {
  static constexpr int kWeights = 4;
  uint4 q;
  __device__ void load(const uint8_t* row, int64_t, int64_t u) { q = load16(row + 16 * u); }
  __device__ float dot(const float* xs, const void*, int64_t u) const {
    const float4 x = reinterpret_cast<const float4*>(xs)[u];
    return __uint_as_float(q.x) * x.x + __uint_as_float(q.y) * x.y + __uint_as_float(q.z) * x.z +
           __uint_as_float(q.w) * x.w;
  }
};

template <>
struct Unit<WeightType::kBF16> {
  static constexpr int kWeights = 8;
  uint4 q;
  __device__ void load(const uint8_t* row, int64_t, int64_t u) { q = load16(row + 16 * u); }
  __device__ float dot(const float* xs, const void*, int64_t u) const {
    const float4 a = reinterpret_cast<const float4*>(xs)[2 * u], b = reinterpret_cast<const float4*>(xs)[2 * u + 1];
    float s = __uint_as_float(q.x << 16) * a.x;
    s += __uint_as_float(q.x & 0xffff0000u) * a.y;
    s += __uint_as_float(q.y << 16) * a.z;
    s += __uint_as_float(q.y & 0xffff0000u) * a.w;
    s += __uint_as_float(q.z << 16) * b.x;
    s += __uint_as_float(q.z & 0xffff0000u) * b.y;
    s += __uint_as_float(q.w << 16) * b.z;
    s += __uint_as_float(q.w & 0xffff0000u) * b.w;
    return s;
  }
};

// Quantized activations of block u: 32 int8 in xq, (d, d * sum q) in xs.
template <>
struct Unit<WeightType::kQ4_0> {
  static constexpr int kWeights = 32;
  uint4 q;
  uint16_t d;
  __device__ void load(const uint8_t* row, int64_t nb, int64_t u) {
    q = load16(row + 16 * u);
    d = __ldg(reinterpret_cast<const uint16_t*>(row + 16 * nb) + u);
  }
  __device__ float dot(const float* xs, const void* xq, int64_t u) const {
    const int4 lo = reinterpret_cast<const int4*>(xq)[2 * u], hi = reinterpret_cast<const int4*>(xq)[2 * u + 1];
    // Byte j holds element j (low nibble) and j + 16 (high): word i's low
    // nibbles meet activations 4i.., its high ones 16 + 4i.
    int s = __dp4a(static_cast<int>(q.x & 0x0f0f0f0fu), lo.x, 0);
    s = __dp4a(static_cast<int>(q.y & 0x0f0f0f0fu), lo.y, s);
    s = __dp4a(static_cast<int>(q.z & 0x0f0f0f0fu), lo.z, s);
    s = __dp4a(static_cast<int>(q.w & 0x0f0f0f0fu), lo.w, s);
    s = __dp4a(static_cast<int>((q.x >> 4) & 0x0f0f0f0fu), hi.x, s);
    s = __dp4a(static_cast<int>((q.y >> 4) & 0x0f0f0f0fu), hi.y, s);
    s = __dp4a(static_cast<int>((q.z >> 4) & 0x0f0f0f0fu), hi.z, s);
    s = __dp4a(static_cast<int>((q.w >> 4) & 0x0f0f0f0fu), hi.w, s);
    const float2 ds = reinterpret_cast<const float2*>(xs)[u];
    // sum (q - 8) x = d_x (sum q qx) - 8 d_x sum qx
    return half_bits(d) * (ds.x * static_cast<float>(s) - 8.0f * ds.y);
  }
};

template <>
struct Unit<WeightType::kQ8_0> {
  static constexpr int kWeights = 32;
  uint4 a, b;
  uint16_t d;
  __device__ void load(const uint8_t* row, int64_t nb, int64_t u) {
    a = load16(row + 32 * u);
    b = load16(row + 32 * u + 16);
    d = __ldg(reinterpret_cast<const uint16_t*>(row + 32 * nb) + u);
  }
  __device__ float dot(const float* xs, const void* xq, int64_t u) const {
    const int4 lo = reinterpret_cast<const int4*>(xq)[2 * u], hi = reinterpret_cast<const int4*>(xq)[2 * u + 1];
    int s = __dp4a(static_cast<int>(a.x), lo.x, 0);
    s = __dp4a(static_cast<int>(a.y), lo.y, s);
    s = __dp4a(static_cast<int>(a.z), lo.z, s);
    s = __dp4a(static_cast<int>(a.w), lo.w, s);
    s = __dp4a(static_cast<int>(b.x), hi.x, s);
    s = __dp4a(static_cast<int>(b.y), hi.y, s);
    s = __dp4a(static_cast<int>(b.z), hi.z, s);
    s = __dp4a(static_cast<int>(b.w), hi.w, s);
    return half_bits(d) * reinterpret_cast<const float2*>(xs)[u].x * static_cast<float>(s);
  }
};

__device__ float block_sum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0;
  for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) total += scratch[i];
  return total;
}

// Eight consecutive threads hold one block of 32: its largest magnitude sets
// the scale, and the quants' sum serves Q4_0's offset of 8. All 32 lanes of
// a warp take part (n is a multiple of 256 for Q types).
__device__ void quantize_group(float4 v, int64_t i, int64_t n, unsigned char* smem) {
  float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
  for (int o = 4; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
  const int q0 = __float2int_rn(v.x * id), q1 = __float2int_rn(v.y * id), q2 = __float2int_rn(v.z * id),
            q3 = __float2int_rn(v.w * id);
  int sum = q0 + q1 + q2 + q3;
  for (int o = 4; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  reinterpret_cast<uint32_t*>(smem)[i / 4] =
      (q0 & 0xff) | ((q1 & 0xff) << 8) | ((q2 & 0xff) << 16) | (static_cast<uint32_t>(q3 & 0xff) << 24);
  if (threadIdx.x % 8 == 0) reinterpret_cast<float2*>(smem + n)[i / 32] = make_float2(d, d * sum);
}

// Shared memory: f32 activations [n_in] (f32/bf16 weights), or int8 [n_in]
// then float2 [n_in / 32] (Q weights). Each thread issues the loads of
// kBatch groups of 4 before using any: one group at a time made the staging
// a chain of dependent L2 round trips (14 for a 14336-wide input), which
// per ncu cost a Q4_0 product more than its weights did.
template <WeightType T>
__device__ void stage_activations(const GemvArgs& a, unsigned char* smem) {
  constexpr int kBatch = 8;
  __shared__ float sums[32];
  const int64_t n = a.n_in, stride = 4 * static_cast<int64_t>(blockDim.x);
  float scale = 1.0f;
  if (a.norm_w) {
    float ss = 0;
    for (int64_t first = 4 * threadIdx.x; first < n; first += stride * kBatch) {
      float4 v[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int64_t i = first + b * stride;
        v[b] = i < n ? *reinterpret_cast<const float4*>(a.x + i) : make_float4(0, 0, 0, 0);
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) ss += v[b].x * v[b].x + v[b].y * v[b].y + v[b].z * v[b].z + v[b].w * v[b].w;
    }
    scale = 1.0f / sqrtf(block_sum(ss, sums) / static_cast<float>(n) + a.eps);
  }
  for (int64_t first = 4 * threadIdx.x; first < n; first += stride * kBatch) {
    float4 v[kBatch], w[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int64_t i = first + b * stride;
      if (i >= n) break;
      v[b] = *reinterpret_cast<const float4*>(a.x + i);
      if (a.norm_w) w[b] = *reinterpret_cast<const float4*>(a.norm_w + i);
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int64_t i = first + b * stride;
      if (i >= n) break;
      float4 x = v[b];
      if (a.norm_w)  // as the cpu's rmsnorm: (x * scale) * w
        x = make_float4(x.x * scale * w[b].x, x.y * scale * w[b].y, x.z * scale * w[b].z, x.w * scale * w[b].w);
      if constexpr (!is_quantized(T)) reinterpret_cast<float4*>(smem)[i / 4] = x;
      else quantize_group(x, i, n, smem);
    }
  }
  __syncthreads();
}

struct Row {
  const uint8_t* w;
  float* out;
  int64_t r;
  bool valid;
};

__device__ Row resolve(const GemvArgs& a, int64_t logical, size_t row_bytes, int target_offset) {
  int64_t total = 0;
  for (int i = target_offset; i < a.n_targets; ++i) total += a.targets[i].n_out;
  if (a.epilogue == GemvEpilogue::kSwiglu) total = a.targets[0].n_out;
  Row row{};
  row.valid = logical < total;
  int64_t r = row.valid ? logical : total - 1;  // an idle row re-reads the last one
  for (int i = target_offset; i < a.n_targets; ++i) {
    if (r < a.targets[i].n_out || a.epilogue == GemvEpilogue::kSwiglu) {
      row.w = static_cast<const uint8_t*>(a.targets[i].w) + static_cast<size_t>(r) * row_bytes;
      row.out = a.targets[i].out;
      row.r = r;
      break;
    }
    r -= a.targets[i].n_out;
  }
  return row;
}

template <WeightType T, int R, int U, int W, bool kSwiglu>
__global__ void __launch_bounds__(W * 32) gemv_kernel(GemvArgs a, size_t row_bytes) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int P = kSwiglu ? 2 * R : R;  // physical rows: gate rows, then their up rows
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  Row rows[P];
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * W + warp) * R;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    rows[r] = resolve(a, first + r, row_bytes, 0);
    if constexpr (kSwiglu) rows[R + r] = resolve(a, first + r, row_bytes, 1);
  }
  const int64_t nb = a.n_in / 32;
  const int64_t units = a.n_in / Unit<T>::kWeights;
  Unit<T> cur[U][P], next[U][P];
  auto load = [&](Unit<T>(&dst)[U][P], int64_t base) {
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < P; ++r)
        if (base + 32 * u < units) dst[u][r].load(rows[r].w, nb, base + 32 * u);
  };
  load(cur, lane);
  stage_activations<T>(a, smem);
  const float* xs = reinterpret_cast<const float*>(is_quantized(T) ? smem + a.n_in : smem);
  float acc[P] = {};
  for (int64_t base = lane; base < units; base += 32 * U) {
    if (base + 32 * U < units) load(next, base + 32 * U);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (base + 32 * u >= units) break;
#pragma unroll
      for (int r = 0; r < P; ++r) acc[r] += cur[u][r].dot(xs, smem, base + 32 * u);
    }
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < P; ++r) cur[u][r] = next[u][r];
  }
#pragma unroll
  for (int r = 0; r < P; ++r)
    for (int o = 16; o > 0; o >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], o);
  if (lane != 0) return;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (!rows[r].valid) continue;
    float* out = rows[r].out + rows[r].r;
    if constexpr (kSwiglu) {
      const float g = acc[r];
      *out = g / (1.0f + expf(-g)) * acc[R + r];
    } else if (a.epilogue == GemvEpilogue::kAccumulate) {
      *out += acc[r];
    } else {
      *out = acc[r];
    }
  }
}

struct Variant {
  const char* name;
  int rows_per_block;  // logical rows
  cudaError_t (*launch)(cudaStream_t, const GemvArgs&, size_t row_bytes, unsigned blocks, size_t smem);
};

template <WeightType T, int R, int U, int W, bool kSwiglu>
cudaError_t launch_kernel(cudaStream_t s, const GemvArgs& a, size_t row_bytes, unsigned blocks, size_t smem) {
  // Beyond 48 KiB a kernel must opt in; the setting is per device, so it is
  // made at every such launch (a host call, recorded once in a decode graph).
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(gemv_kernel<T, R, U, W, kSwiglu>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  gemv_kernel<T, R, U, W, kSwiglu><<<blocks, W * 32, smem, s>>>(a, row_bytes);
  return cudaGetLastError();
}

template <WeightType T, int R, int U, int W>
cudaError_t launch_variant(cudaStream_t s, const GemvArgs& a, size_t row_bytes, unsigned blocks, size_t smem) {
  if (a.epilogue == GemvEpilogue::kSwiglu) return launch_kernel<T, R, U, W, true>(s, a, row_bytes, blocks, smem);
  return launch_kernel<T, R, U, W, false>(s, a, row_bytes, blocks, smem);
}

#define TANDEM_GEMV_VARIANT(T, R, U, W) \
  Variant { "R" #R " U" #U " W" #W, (R) * (W), launch_variant<T, R, U, W> }

// The first of each list is the default (docs/benchmarks.md has the sweep
// that chose it); the others stay for `gemv_variant` sweeps.
template <WeightType T>
struct Variants;
template <>
struct Variants<WeightType::kF32> {
  static constexpr Variant list[] = {TANDEM_GEMV_VARIANT(WeightType::kF32, 1, 8, 4),
                                     TANDEM_GEMV_VARIANT(WeightType::kF32, 2, 4, 4),
                                     TANDEM_GEMV_VARIANT(WeightType::kF32, 1, 4, 8)};
};
template <>
struct Variants<WeightType::kBF16> {
  static constexpr Variant list[] = {
      TANDEM_GEMV_VARIANT(WeightType::kBF16, 2, 4, 8), TANDEM_GEMV_VARIANT(WeightType::kBF16, 1, 8, 4),
      TANDEM_GEMV_VARIANT(WeightType::kBF16, 1, 4, 8), TANDEM_GEMV_VARIANT(WeightType::kBF16, 2, 4, 4),
      TANDEM_GEMV_VARIANT(WeightType::kBF16, 4, 2, 4), TANDEM_GEMV_VARIANT(WeightType::kBF16, 2, 2, 4)};
};
template <>
struct Variants<WeightType::kQ8_0> {
  static constexpr Variant list[] = {
      TANDEM_GEMV_VARIANT(WeightType::kQ8_0, 2, 2, 8), TANDEM_GEMV_VARIANT(WeightType::kQ8_0, 2, 4, 4),
      TANDEM_GEMV_VARIANT(WeightType::kQ8_0, 4, 2, 8), TANDEM_GEMV_VARIANT(WeightType::kQ8_0, 1, 4, 8)};
};
template <>
struct Variants<WeightType::kQ4_0> {
  static constexpr Variant list[] = {
      TANDEM_GEMV_VARIANT(WeightType::kQ4_0, 2, 2, 8), TANDEM_GEMV_VARIANT(WeightType::kQ4_0, 4, 2, 8),
      TANDEM_GEMV_VARIANT(WeightType::kQ4_0, 2, 4, 4), TANDEM_GEMV_VARIANT(WeightType::kQ4_0, 4, 4, 4),
      TANDEM_GEMV_VARIANT(WeightType::kQ4_0, 1, 4, 8), TANDEM_GEMV_VARIANT(WeightType::kQ4_0, 2, 4, 8)};
};

template <WeightType T>
constexpr int count_of() {
  return static_cast<int>(sizeof(Variants<T>::list) / sizeof(Variant));
}

const Variant* variant_for(WeightType t, int v) {
  switch (t) {
    case WeightType::kF32: return v < count_of<WeightType::kF32>() ? &Variants<WeightType::kF32>::list[v] : nullptr;
    case WeightType::kBF16: return v < count_of<WeightType::kBF16>() ? &Variants<WeightType::kBF16>::list[v] : nullptr;
    case WeightType::kQ8_0: return v < count_of<WeightType::kQ8_0>() ? &Variants<WeightType::kQ8_0>::list[v] : nullptr;
    case WeightType::kQ4_0: return v < count_of<WeightType::kQ4_0>() ? &Variants<WeightType::kQ4_0>::list[v] : nullptr;
  }
  return nullptr;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

int gemv_variant_count(WeightType t) {
  int n = 0;
  while (variant_for(t, n)) ++n;
  return n;
}
const char* gemv_variant_name(WeightType t, int variant) {
  const Variant* v = variant_for(t, variant);
  return v ? v->name : "";
}

size_t gemv_shared_bytes(WeightType t, int64_t n_in) {
  return is_quantized(t) ? static_cast<size_t>(n_in + n_in / 32 * 8) : static_cast<size_t>(n_in * 4);
}

// What a block may stage on the current device: the H100 opts in to 227
// KiB, the GB10 only to 99 KiB.
size_t shared_limit() {
  int device = 0, optin = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
    return 48 * 1024;
  return std::min(static_cast<size_t>(optin), kGemvMaxSharedBytes);
}

bool gemv_applies(const GemvArgs& a) {
  const int64_t granule = is_quantized(a.type) ? 256 : a.type == WeightType::kBF16 ? 8 : 4;
  if (a.n_in <= 0 || a.n_in % granule != 0) return false;
  if (gemv_shared_bytes(a.type, a.n_in) > shared_limit()) return false;
  if (!aligned16(a.x) || (a.norm_w && !aligned16(a.norm_w))) return false;
  if (a.n_targets < 1 || (a.epilogue == GemvEpilogue::kSwiglu && a.n_targets != 2)) return false;
  for (int i = 0; i < a.n_targets; ++i)
    if (!aligned16(a.targets[i].w)) return false;
  return true;
}

cudaError_t gemv(cudaStream_t s, const GemvArgs& a, int variant) {
  const Variant* v = variant_for(a.type, variant < 0 ? 0 : variant);
  if (v == nullptr) return cudaErrorInvalidValue;
  int64_t rows = 0;
  for (int i = 0; i < a.n_targets; ++i) rows += a.targets[i].n_out;
  if (a.epilogue == GemvEpilogue::kSwiglu) rows = a.targets[0].n_out;
  const size_t row_bytes = is_quantized(a.type) ? static_cast<size_t>(a.n_in / 32 * block_bytes(a.type))
                                                : static_cast<size_t>(a.n_in) * (a.type == WeightType::kF32 ? 4 : 2);
  const auto blocks = static_cast<unsigned>((rows + v->rows_per_block - 1) / v->rows_per_block);
  return v->launch(s, a, row_bytes, blocks, gemv_shared_bytes(a.type, a.n_in));
}

}  // namespace tandem::cuda
