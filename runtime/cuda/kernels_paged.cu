// Kernels of a batched step over a paged KV cache (runtime/backend.h
// PagedAttention): rope at per-token positions, the KV store by slot, and
// paged causal attention, each ONE launch for all sequences of the step.
// Attention: block (head, token) walks the token's positions through its
// sequence's block table, 16 warps each taking every 16th position with an
// online softmax (lanes split head_dim), merged in shared memory. No split-K
// yet: a token with a long context is one block's work (see the note in
// cuda_paged.cc).
#include <cfloat>

#include "runtime/cuda/cuda_kernels.h"

namespace tandem::cuda {
namespace {

constexpr int kWarps = 16;
constexpr int kPerLane = kAttentionMaxHeadDim / 32;

__device__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One thread per (row, head of q or k, pair); the angle in double as the
// CPU (and rope_kernel) computes it, from the same frequency table.
__global__ void rope_at_kernel(float* q, float* k, const int32_t* positions, int64_t n_heads, int64_t n_kv_heads,
                               int64_t head_dim, RopeFrequencies freqs) {
  __shared__ double inv_freq[kRopeMaxPairs];
  for (int64_t j = threadIdx.x; j < head_dim / 2; j += blockDim.x) inv_freq[j] = freqs.inv_freq[j];
  __syncthreads();
  const int64_t pairs = (n_heads + n_kv_heads) * (head_dim / 2);
  const int64_t row = blockIdx.y;
  const int64_t pos = positions[row];
  for (int64_t p = blockIdx.x * blockDim.x + threadIdx.x; p < pairs; p += gridDim.x * blockDim.x) {
    int64_t h = p / (head_dim / 2);
    const int64_t j = p % (head_dim / 2);
    float* t = q;
    int64_t heads = n_heads;
    if (h >= n_heads) h -= n_heads, t = k, heads = n_kv_heads;
    double sd, cd;
    sincos(static_cast<double>(pos) * inv_freq[j], &sd, &cd);
    const float c = static_cast<float>(cd), s = static_cast<float>(sd);
    float* pair = t + row * heads * head_dim + h * head_dim + 2 * j;
    const float v0 = pair[0], v1 = pair[1];
    pair[0] = v0 * c - v1 * s;
    pair[1] = v0 * s + v1 * c;
  }
}

__global__ void store_kv_paged_kernel(float* k_pool, float* v_pool, const float* k, const float* v,
                                      const int32_t* slots, int64_t width) {
  const int64_t row = blockIdx.y;
  const int64_t slot = slots[row];
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < width; i += gridDim.x * blockDim.x) {
    k_pool[slot * width + i] = k[row * width + i];
    v_pool[slot * width + i] = v[row * width + i];
  }
}

__global__ void __launch_bounds__(kWarps * 32) paged_attention_kernel(PagedAttentionArgs a) {
  const int64_t h = blockIdx.x, t = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t hd = a.head_dim, kv_dim = a.n_kv_heads * hd;
  const int64_t len = static_cast<int64_t>(a.positions[t]) + 1;
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.token_seq[t]) * a.table_stride;
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
  for (int64_t p = warp; p < len; p += kWarps) {
    const int64_t row = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
    const float* k = a.k_pool + row * kv_dim + kv_off;
    const float* v = a.v_pool + row * kv_dim + kv_off;
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
  // Warps that saw no position (len < kWarps) hold m = -inf and count for nothing.
  float big = -INFINITY;
  for (int w = 0; w < kWarps; ++w) big = fmaxf(big, sm_m[w]);
  float sum = 0;
  for (int w = 0; w < kWarps; ++w) sum += sm_m[w] == -INFINITY ? 0 : sm_l[w] * expf(sm_m[w] - big);
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float v = 0;
    for (int w = 0; w < kWarps; ++w) v += sm_m[w] == -INFINITY ? 0 : sm_acc[w][d] * expf(sm_m[w] - big);
    a.out[(t * a.n_heads + h) * hd + d] = v / sum;
  }
}

}  // namespace

cudaError_t rope_at(cudaStream_t s, float* q, float* k, const int32_t* positions, int64_t rows, int64_t n_heads,
                    int64_t n_kv_heads, int64_t head_dim, const RopeFrequencies& freqs) {
  const int64_t pairs = (n_heads + n_kv_heads) * (head_dim / 2);
  const dim3 grid(static_cast<unsigned>((pairs + 127) / 128), static_cast<unsigned>(rows));
  rope_at_kernel<<<grid, 128, 0, s>>>(q, k, positions, n_heads, n_kv_heads, head_dim, freqs);
  return cudaGetLastError();
}

cudaError_t store_kv_paged(cudaStream_t s, float* k_pool, float* v_pool, const float* k, const float* v,
                           const int32_t* slots, int64_t rows, int64_t width) {
  const dim3 grid(static_cast<unsigned>((width + 255) / 256), static_cast<unsigned>(rows));
  store_kv_paged_kernel<<<grid, 256, 0, s>>>(k_pool, v_pool, k, v, slots, width);
  return cudaGetLastError();
}

cudaError_t paged_attention(cudaStream_t s, const PagedAttentionArgs& a) {
  if (a.head_dim > kAttentionMaxHeadDim || a.n_kv_heads < 1 || a.n_heads % a.n_kv_heads != 0)
    return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(a.n_heads), static_cast<unsigned>(a.tokens));
  paged_attention_kernel<<<grid, kWarps * 32, 0, s>>>(a);
  return cudaGetLastError();
}

}  // namespace tandem::cuda
