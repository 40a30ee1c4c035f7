// Attention kernels. Decode (few query tokens): split-K over the KV cache
// ("flash decoding"): block (head, token, split) runs an online softmax over
// kAttentionChunk cache rows with 16 warps, each warp one position at a time
// (lanes split head_dim), and writes (max, sum, acc[head_dim]); the last
// block of a (head, token) to finish merges the splits (a counter per pair,
// reset by that block), which saves a dependent kernel per layer. Prefill's
// scores come from cuBLAS (cuda_matmul.cc); causal_softmax masks and
// normalises them.
#include <cfloat>

#include "runtime/cuda/cuda_kernels.h"

namespace tandem::cuda {
namespace {

// 16 warps share a chunk's 64 positions, 4 each: a warp's positions run one
// after another (dot, shuffle sum, softmax update), so fewer per warp is less
// latency per split (9 us with 4 warps on the H100).
constexpr int kWarps = 16;
constexpr int kPerLane = kAttentionMaxHeadDim / 32;

__device__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The splits' partials of (token t, head h) -> its output row.
__device__ void merge(const AttentionArgs& a, const float* partials, int64_t splits, int64_t used, int64_t t,
                      int64_t h) {
  const int64_t hd = a.head_dim;
  const float* base = partials + (t * a.n_heads + h) * splits * (hd + 2);
  float big = -INFINITY;
  for (int64_t s = 0; s < used; ++s) big = fmaxf(big, __ldcg(base + s * (hd + 2)));
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float sum = 0, v = 0;
    for (int64_t s = 0; s < used; ++s) {
      const float* p = base + s * (hd + 2);
      const float m = __ldcg(p);
      if (m == -INFINITY) continue;
      const float w = expf(m - big);
      sum += __ldcg(p + 1) * w;
      v += __ldcg(p + 2 + d) * w;
    }
    a.out[(t * a.n_heads + h) * hd + d] = v / sum;
  }
}

__global__ void __launch_bounds__(kWarps * 32)
    split_kernel(AttentionArgs a, float* partials, unsigned* counters, int64_t splits) {
  const int64_t h = blockIdx.x, t = blockIdx.y, s = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t hd = a.head_dim, kv_dim = a.n_kv_heads * hd;
  const int64_t len = (a.step ? a.step->pos : a.start_pos) + t + 1;
  // A recorded step launches the splits of the longest context; those past
  // this token's positions have nothing to do and take no part in the merge.
  const int64_t used = attention_splits(len);
  if (s >= used) return;
  const int64_t begin = s * kAttentionChunk;
  const int64_t end = begin + kAttentionChunk < len ? begin + kAttentionChunk : len;
  const int64_t kv_off = (h / (a.n_heads / a.n_kv_heads)) * hd;
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  const float* q = a.q + (t * a.n_heads + h) * hd;

  float qv[kPerLane], acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t d = lane + 32 * i;
    qv[i] = d < hd ? q[d] : 0.0f;
    acc[i] = 0;
  }
  float m = -INFINITY, l = 0;
  for (int64_t p = begin + warp; p < end; p += kWarps) {
    const float* k = a.k_cache + p * kv_dim + kv_off;
    const float* v = a.v_cache + p * kv_dim + kv_off;
    float dot = 0;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
      if (lane + 32 * i < hd) dot += qv[i] * k[lane + 32 * i];
    const float score = warp_sum(dot) * scale;
    const float m_new = fmaxf(m, score);
    const float corr = expf(m - m_new), e = expf(score - m_new);
    l = l * corr + e;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
      if (lane + 32 * i < hd) acc[i] = acc[i] * corr + e * v[lane + 32 * i];
    m = m_new;
  }

  __shared__ float sm_m[kWarps], sm_l[kWarps], sm_acc[kWarps][kAttentionMaxHeadDim];
  if (lane == 0) sm_m[warp] = m, sm_l[warp] = l;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i)
    if (lane + 32 * i < hd) sm_acc[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  float big = -INFINITY;
  for (int w = 0; w < kWarps; ++w) big = fmaxf(big, sm_m[w]);
  float* out = partials + ((t * a.n_heads + h) * splits + s) * (hd + 2);
  if (threadIdx.x == 0) {
    float sum = 0;
    for (int w = 0; w < kWarps; ++w) sum += sm_m[w] == -INFINITY ? 0 : sm_l[w] * expf(sm_m[w] - big);
    out[0] = big;
    out[1] = sum;
  }
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float v = 0;
    for (int w = 0; w < kWarps; ++w) v += sm_m[w] == -INFINITY ? 0 : sm_acc[w][d] * expf(sm_m[w] - big);
    out[2 + d] = v;
  }
  // The classic last-block pattern: publish the partials, count, and let the
  // block that completes the count read everyone's (through L2: __ldcg).
  __threadfence();
  __syncthreads();
  __shared__ bool last;
  unsigned* counter = counters + t * a.n_heads + h;
  if (threadIdx.x == 0) last = atomicAdd(counter, 1u) == static_cast<unsigned>(used - 1);
  __syncthreads();
  if (!last) return;
  __threadfence();
  merge(a, partials, splits, used, t, h);
  if (threadIdx.x == 0) *counter = 0;  // ready for the next launch
}

template <bool kMax>
__device__ float block_reduce(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float r = kMax ? -INFINITY : 0.0f;
  for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) r = kMax ? fmaxf(r, scratch[i]) : r + scratch[i];
  return r;
}

__global__ void causal_softmax_kernel(float* scores, int64_t tokens, int64_t len, int64_t start_pos, float scale) {
  const int64_t t = blockIdx.x, h = blockIdx.y;
  float* row = scores + (h * tokens + t) * len;
  const int64_t visible = start_pos + t + 1;
  __shared__ float scratch[32];
  float big = -INFINITY;
  for (int64_t i = threadIdx.x; i < visible; i += blockDim.x) big = fmaxf(big, row[i] * scale);
  big = block_reduce<true>(big, scratch);
  float sum = 0;
  for (int64_t i = threadIdx.x; i < visible; i += blockDim.x) {
    const float e = expf(row[i] * scale - big);
    row[i] = e;
    sum += e;
  }
  sum = block_reduce<false>(sum, scratch);
  const float inv = 1.0f / sum;
  for (int64_t i = threadIdx.x; i < len; i += blockDim.x) row[i] = i < visible ? row[i] * inv : 0.0f;
}

}  // namespace

cudaError_t attention_split_k(cudaStream_t s, const AttentionArgs& a, float* partials, unsigned* counters) {
  const int64_t splits = a.splits;
  const dim3 grid(static_cast<unsigned>(a.n_heads), static_cast<unsigned>(a.tokens), static_cast<unsigned>(splits));
  split_kernel<<<grid, kWarps * 32, 0, s>>>(a, partials, counters, splits);
  return cudaGetLastError();
}

cudaError_t causal_softmax(cudaStream_t s, float* scores, int64_t n_heads, int64_t tokens, int64_t len,
                           int64_t start_pos, float scale) {
  const dim3 grid(static_cast<unsigned>(tokens), static_cast<unsigned>(n_heads));
  causal_softmax_kernel<<<grid, 256, 0, s>>>(scores, tokens, len, start_pos, scale);
  return cudaGetLastError();
}

}  // namespace tandem::cuda
