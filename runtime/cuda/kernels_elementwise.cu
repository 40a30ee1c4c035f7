// Elementwise and row-wise kernels of the CUDA backend: embedding, RMSNorm,
// RoPE, SwiGLU, residual add, argmax, synthetic fills and dtype conversions.
#include <cfloat>

#include "runtime/cuda/cuda_kernels.h"
#include "runtime/cuda/q_layout.h"
#include "runtime/cuda/weight_load.cuh"
#include "runtime/quant_blocks.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 * 16 ? b : 65535 * 16);
}

// Block-wide sum; every thread gets the result. blockDim.x is a multiple of 32.
__device__ float block_sum(float v) {
  __shared__ float partial[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float total = 0;
  for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) total += partial[i];
  return total;
}

__global__ void set_step_kernel(StepParams* step, StepParams value) { *step = value; }

// Rows outside [first_row, first_row + table_rows) give zeros: a
// vocab-parallel shard's part of the embedding.
__global__ void embed_kernel(float* out, const void* table, WeightType type, int64_t width, int64_t table_rows,
                             int64_t first_row, EmbedTokens ids, const StepParams* step) {
  const int64_t row = (step ? step->tokens[blockIdx.y] : ids.ids[blockIdx.y]) - first_row;
  const bool held = row >= 0 && row < table_rows;
  float* o = out + blockIdx.y * width;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < width; i += gridDim.x * blockDim.x)
    o[i] = held ? load_weight(table, type, width, row * width + i) : 0.0f;
}

__global__ void rmsnorm_kernel(float* out, const float* x, const float* w, int64_t width, float eps) {
  const float* xr = x + blockIdx.x * width;
  float* o = out + blockIdx.x * width;
  float ss = 0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) ss += xr[i] * xr[i];
  ss = block_sum(ss);
  const float scale = 1.0f / sqrtf(ss / static_cast<float>(width) + eps);
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) o[i] = xr[i] * scale * w[i];
}

// With caches given, k's rotated pairs and v's pairs are also stored at the
// token's cache row (rope and store_kv in one kernel).
__global__ void rope_kernel(float* q, float* k, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                            int64_t start_pos, RopeFrequencies freqs, const StepParams* step, const float* v,
                            float* k_cache, float* v_cache) {
  // The table to shared memory first: the threads of a warp read different
  // pairs' entries, which parameter (constant) memory would serialise.
  __shared__ double inv_freq[kRopeMaxPairs];
  for (int64_t j = threadIdx.x; j < head_dim / 2; j += blockDim.x) inv_freq[j] = freqs.inv_freq[j];
  __syncthreads();
  // One thread per (row, head of q or k, pair). The angle in double, as the
  // CPU does: pos * freq reaches thousands of radians.
  const int64_t pairs = (n_heads + n_kv_heads) * (head_dim / 2);
  const int64_t row = blockIdx.y;
  if (step) start_pos = step->pos;
  for (int64_t p = blockIdx.x * blockDim.x + threadIdx.x; p < pairs; p += gridDim.x * blockDim.x) {
    int64_t h = p / (head_dim / 2);
    const int64_t j = p % (head_dim / 2);
    float* t = q;
    int64_t heads = n_heads;
    if (h >= n_heads) h -= n_heads, t = k, heads = n_kv_heads;
    double sd, cd;
    sincos(static_cast<double>(start_pos + row) * inv_freq[j], &sd, &cd);
    const float c = static_cast<float>(cd), s = static_cast<float>(sd);
    const int64_t at = h * head_dim + 2 * j;
    float* pair = t + row * heads * head_dim + at;
    const float v0 = pair[0], v1 = pair[1];
    pair[0] = v0 * c - v1 * s;
    pair[1] = v0 * s + v1 * c;
    if (t == k && k_cache) {
      const int64_t width = n_kv_heads * head_dim;
      float* kc = k_cache + (start_pos + row) * width + at;
      float* vc = v_cache + (start_pos + row) * width + at;
      kc[0] = pair[0];
      kc[1] = pair[1];
      vc[0] = v[row * width + at];
      vc[1] = v[row * width + at + 1];
    }
  }
}

__global__ void store_kv_kernel(float* k_cache, float* v_cache, const float* k, const float* v, int64_t n,
                                int64_t width, int64_t start_pos, const StepParams* step) {
  const int64_t offset = (step ? step->pos : start_pos) * width;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    k_cache[offset + i] = k[i];
    v_cache[offset + i] = v[i];
  }
}

__global__ void swiglu_kernel(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    x[i] += y[i];
}

__global__ void add_bias_kernel(float* x, const float* bias, int64_t n, int64_t width) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    x[i] += bias[i % width];
}

// Row r's best in [begin, end): NaNs never win; ties go to the first index.
struct Best {
  float value;
  int64_t index;
};
__device__ Best better(Best a, Best b) {
  return b.value > a.value || (b.value == a.value && b.index < a.index) ? b : a;
}
__device__ Best block_best(Best mine) {
  __shared__ float vals[32];
  __shared__ int64_t idx[32];
  for (int o = 16; o > 0; o >>= 1)
    mine = better(mine, Best{__shfl_xor_sync(0xffffffffu, mine.value, o), __shfl_xor_sync(0xffffffffu, mine.index, o)});
  if (threadIdx.x % 32 == 0) vals[threadIdx.x / 32] = mine.value, idx[threadIdx.x / 32] = mine.index;
  __syncthreads();
  Best best{-FLT_MAX, INT64_MAX};
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) best = better(best, Best{vals[w], idx[w]});
  return best;
}

// Block (c, r) scans chunk c of row r; the last block of a row to finish
// picks among the chunks' bests (one kernel, the whole GPU on a 128k vocabulary).
__global__ void argmax_kernel(int32_t* out, const float* logits, int64_t n, int64_t chunk, Best* partials,
                              unsigned* counters) {
  const int64_t r = blockIdx.y, c = blockIdx.x;
  const float* row = logits + r * n;
  Best mine{-FLT_MAX, n};  // an all-NaN row gives 0 below
  const int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
  for (int64_t i = c * chunk + threadIdx.x; i < end; i += blockDim.x) mine = better(mine, Best{row[i], i});
  const Best best = block_best(mine);
  __shared__ bool last;
  if (threadIdx.x == 0) {
    partials[r * gridDim.x + c] = best;
    __threadfence();
    last = atomicAdd(counters + r, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last || threadIdx.x != 0) return;
  __threadfence();
  Best total{-FLT_MAX, n};
  for (unsigned i = 0; i < gridDim.x; ++i) {
    const Best* p = partials + r * gridDim.x + i;
    total = better(total, Best{__ldcg(&p->value), __ldcg(&p->index)});
  }
  out[r] = static_cast<int32_t>(total.index < n ? total.index : 0);
  counters[r] = 0;  // ready for the next launch
}

__device__ float synthetic_value(uint64_t seed, int64_t i, float scale, float offset) {
  return quant::add_rn(offset, quant::mul_rn(scale, quant::synthetic_uniform(seed, static_cast<uint64_t>(i))));
}

// One thread per element (f32, bf16) or per 32-element block (Q8_0, Q4_0,
// written to the split layout's places for rows of nb blocks).
__global__ void fill_kernel(void* t, WeightType type, int64_t units, int64_t nb, uint64_t seed, float scale,
                            float offset) {
  for (int64_t u = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; u < units; u += gridDim.x * blockDim.x) {
    if (type == WeightType::kF32) {
      static_cast<float*>(t)[u] = synthetic_value(seed, u, scale, offset);
    } else if (type == WeightType::kBF16) {
      static_cast<uint16_t*>(t)[u] = quant::bf16_from_f32(synthetic_value(seed, u, scale, offset));
    } else {
      float x[quant::kBlock];
      for (int i = 0; i < quant::kBlock; ++i) x[i] = synthetic_value(seed, u * quant::kBlock + i, scale, offset);
      uint8_t block[quant::kQ8Bytes];
      if (type == WeightType::kQ8_0) quant::quantize_q8_0(x, block);
      else quant::quantize_q4_0(x, block);
      uint8_t* row = static_cast<uint8_t*>(t) + (u / nb) * nb * block_bytes(type);
      const int64_t b = u % nb;
      memcpy(row + nb * quant_bytes(type) + 2 * b, block, 2);
      memcpy(row + b * quant_bytes(type), block + 2, quant_bytes(type));
    }
  }
}

__global__ void f32_to_bf16_kernel(uint16_t* out, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = quant::bf16_from_f32(x[i]);
}

// Q8_0/Q4_0 (split rows of nb blocks) -> bf16, one thread per block of 32:
// the scale is read once and the 64 output bytes leave as four 16-byte stores.
__global__ void weights_to_bf16_kernel(uint16_t* out, const void* w, WeightType type, int64_t groups, int64_t nb) {
  const bool q8 = type == WeightType::kQ8_0;
  for (int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; g < groups; g += gridDim.x * blockDim.x) {
    const uint8_t* row = static_cast<const uint8_t*>(w) + (g / nb) * nb * block_bytes(type);
    const int64_t b = g % nb;
    const uint8_t* q = block_quants(row, type, b);
    uint16_t dh;
    memcpy(&dh, block_scale(row, type, nb, b), 2);
    const float d = quant::f32_from_f16(dh);
    float v[32];
    for (int i = 0; i < 16; ++i) {
      const uint8_t b0 = q[i], b1 = q8 ? q[16 + i] : 0;
      v[i] = d * (q8 ? static_cast<float>(static_cast<int8_t>(b0)) : static_cast<float>((b0 & 0xf) - 8));
      v[16 + i] = d * (q8 ? static_cast<float>(static_cast<int8_t>(b1)) : static_cast<float>((b0 >> 4) - 8));
    }
    uint32_t packed[16];
    for (int i = 0; i < 16; ++i)
      packed[i] = quant::bf16_from_f32(v[2 * i]) | (static_cast<uint32_t>(quant::bf16_from_f32(v[2 * i + 1])) << 16);
    for (int i = 0; i < 4; ++i)
      reinterpret_cast<uint4*>(out + g * 32)[i] = make_uint4(packed[4 * i], packed[4 * i + 1], packed[4 * i + 2], packed[4 * i + 3]);
  }
}

// One block per row: the row into shared memory, then back split.
__global__ void split_rows_kernel(uint8_t* t, WeightType type, int64_t nb) {
  extern __shared__ __align__(16) unsigned char row_in[];
  const int64_t row_bytes = nb * block_bytes(type);
  uint8_t* row = t + blockIdx.x * row_bytes;
  for (int64_t i = threadIdx.x; i < row_bytes; i += blockDim.x) row_in[i] = row[i];
  __syncthreads();
  const int qb = quant_bytes(type);
  for (int64_t b = threadIdx.x; b < nb; b += blockDim.x) {
    const unsigned char* in = row_in + b * (qb + 2);
    memcpy(row + nb * qb + 2 * b, in, 2);
    memcpy(row + b * qb, in + 2, qb);
  }
}

// Streams `n` 16-byte words once (grid-stride, four loads in flight per
// thread) and writes each block's xor, so nothing is optimised away.
__global__ void read_probe_kernel(const uint4* data, int64_t n, uint32_t* out) {
  uint32_t x = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const uint4 a = __ldg(data + i), b = __ldg(data + i + stride), c = __ldg(data + i + 2 * stride),
                d = __ldg(data + i + 3 * stride);
    x ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n; i += stride) {
    const uint4 a = __ldg(data + i);
    x ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  for (int o = 16; o > 0; o >>= 1) x ^= __shfl_xor_sync(0xffffffffu, x, o);
  if (threadIdx.x % 32 == 0) atomicXor(out + blockIdx.x, x);
}

}  // namespace

cudaError_t read_probe(cudaStream_t s, const void* data, size_t bytes, uint32_t* out, int blocks) {
  read_probe_kernel<<<blocks, kThreads, 0, s>>>(static_cast<const uint4*>(data), static_cast<int64_t>(bytes / 16), out);
  return cudaGetLastError();
}

cudaError_t set_step(cudaStream_t s, StepParams* device_step, const StepParams& value) {
  set_step_kernel<<<1, 1, 0, s>>>(device_step, value);
  return cudaGetLastError();
}

cudaError_t embed(cudaStream_t s, float* out, const void* table, WeightType type, int64_t width,
                  int64_t table_rows, int64_t first_row, const EmbedTokens& ids, int count,
                  const StepParams* step) {
  const dim3 grid(static_cast<unsigned>((width + kThreads - 1) / kThreads), count);
  embed_kernel<<<grid, kThreads, 0, s>>>(out, table, type, width, table_rows, first_row, ids, step);
  return cudaGetLastError();
}

cudaError_t rmsnorm(cudaStream_t s, float* out, const float* x, const float* w, int64_t rows, int64_t width,
                    float eps) {
  rmsnorm_kernel<<<static_cast<unsigned>(rows), 512, 0, s>>>(out, x, w, width, eps);
  return cudaGetLastError();
}

cudaError_t rope_interleaved(cudaStream_t s, float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads,
                             int64_t head_dim, int64_t start_pos, const RopeFrequencies& freqs,
                             const StepParams* step, const KvStore* store) {
  if (head_dim / 2 > kRopeMaxPairs) return cudaErrorInvalidValue;
  const int64_t pairs = (n_heads + n_kv_heads) * (head_dim / 2);
  const dim3 grid(static_cast<unsigned>((pairs + 127) / 128), static_cast<unsigned>(rows));
  rope_kernel<<<grid, 128, 0, s>>>(q, k, n_heads, n_kv_heads, head_dim, start_pos, freqs, step,
                                   store ? store->v : nullptr, store ? store->k_cache : nullptr,
                                   store ? store->v_cache : nullptr);
  return cudaGetLastError();
}

cudaError_t store_kv(cudaStream_t s, float* k_cache, float* v_cache, const float* k, const float* v, int64_t rows,
                     int64_t width, int64_t start_pos, const StepParams* step) {
  store_kv_kernel<<<blocks_for(rows * width), kThreads, 0, s>>>(k_cache, v_cache, k, v, rows * width, width,
                                                                 start_pos, step);
  return cudaGetLastError();
}

cudaError_t swiglu(cudaStream_t s, float* out, const float* gate, const float* up, int64_t n) {
  swiglu_kernel<<<blocks_for(n), kThreads, 0, s>>>(out, gate, up, n);
  return cudaGetLastError();
}

cudaError_t add(cudaStream_t s, float* x, const float* y, int64_t n) {
  add_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, y, n);
  return cudaGetLastError();
}

cudaError_t add_bias(cudaStream_t s, float* x, const float* bias, int64_t rows, int64_t width) {
  add_bias_kernel<<<blocks_for(rows * width), kThreads, 0, s>>>(x, bias, rows * width, width);
  return cudaGetLastError();
}

cudaError_t argmax_rows(cudaStream_t s, int32_t* out, const float* logits, int64_t rows, int64_t n, void* scratch) {
  const int64_t chunks = argmax_chunks(n);
  auto* partials = static_cast<Best*>(scratch);
  auto* counters = reinterpret_cast<unsigned*>(partials + rows * chunks);
  argmax_kernel<<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(rows)), 256, 0, s>>>(
      out, logits, n, (n + chunks - 1) / chunks, partials, counters);
  return cudaGetLastError();
}

size_t argmax_scratch_bytes(int64_t rows, int64_t n) {
  return static_cast<size_t>(rows * argmax_chunks(n)) * sizeof(Best) + static_cast<size_t>(rows) * sizeof(unsigned);
}

cudaError_t fill_synthetic(cudaStream_t s, void* t, WeightType type, int64_t n, int64_t row_len, uint64_t seed,
                           float scale, float offset) {
  const bool blocks = is_quantized(type);
  const int64_t units = blocks ? n / quant::kBlock : n;
  fill_kernel<<<blocks_for(units), kThreads, 0, s>>>(t, type, units, row_len / quant::kBlock, seed, scale, offset);
  return cudaGetLastError();
}

cudaError_t split_quant_rows(cudaStream_t s, void* t, WeightType type, int64_t rows, int64_t row_len) {
  const int64_t nb = row_len / quant::kBlock;
  const size_t row_bytes = static_cast<size_t>(nb * block_bytes(type));
  if (row_bytes > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(split_rows_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(row_bytes));
    if (err != cudaSuccess) return err;
  }
  for (int64_t first = 0; first < rows; first += 65535) {
    const auto count = static_cast<unsigned>(rows - first < 65535 ? rows - first : 65535);
    split_rows_kernel<<<count, 256, row_bytes, s>>>(static_cast<uint8_t*>(t) + first * row_bytes, type, nb);
  }
  return cudaGetLastError();
}

cudaError_t f32_to_bf16(cudaStream_t s, uint16_t* out, const float* x, int64_t n) {
  f32_to_bf16_kernel<<<blocks_for(n), kThreads, 0, s>>>(out, x, n);
  return cudaGetLastError();
}

cudaError_t weights_to_bf16(cudaStream_t s, uint16_t* out, const void* w, WeightType type, int64_t n,
                            int64_t row_len) {
  weights_to_bf16_kernel<<<blocks_for(n / 32), kThreads, 0, s>>>(out, w, type, n / 32, row_len / 32);
  return cudaGetLastError();
}

}  // namespace tandem::cuda
