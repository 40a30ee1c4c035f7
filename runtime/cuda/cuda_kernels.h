// Launchers of the CUDA backend's kernels, on raw device pointers. C++17 and
// free of tandem's C++20 headers, so the .cu files that define them build
// with nvcc as C++17 (cmake/TandemCuda.cmake) while cuda_backend.cc, which
// checks shapes and picks kernels, is ordinary C++20. Each launcher enqueues
// on `stream` and returns cudaGetLastError() of its launch.
//
// Weight dtype codes follow tandem::DType's order: see WeightType.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::cuda {

enum class WeightType : int { kF32 = 0, kBF16 = 1, kQ8_0 = 2, kQ4_0 = 3 };

// A decode step's inputs in device memory, so that a CUDA graph recorded once
// replays for every position: kernels given a non-null `step` read the
// position and token ids from it instead of their by-value arguments.
constexpr int kStepMaxTokens = 16;
struct StepParams {
  int64_t pos;
  int32_t tokens[kStepMaxTokens];
};
cudaError_t set_step(cudaStream_t s, StepParams* device_step, const StepParams& value);

// Embedding rows of any weight type -> f32. Token ids come by value in
// chunks (kEmbedChunk per launch), so no host buffer outlives the call.
constexpr int kEmbedChunk = 256;
struct EmbedTokens {
  int ids[kEmbedChunk];
};
cudaError_t embed(cudaStream_t s, float* out, const void* table, WeightType type, int64_t width,
                  int64_t table_rows, int64_t first_row,
                  const EmbedTokens& ids, int count, const StepParams* step);
cudaError_t rmsnorm(cudaStream_t s, float* out, const float* x, const float* w, int64_t rows,
                    int64_t width, float eps);
// llama2.c's interleaved pairs (2j, 2j+1) of each head of q and k, in one
// launch; row t at position start_pos + t, pair j turned by position *
// inv_freq[j]. The table travels by value in the launch's parameters: it is
// the same for every step, so a recorded decode-step graph keeps it, and no
// device copy has to outlive the host's. With `store`, the rotated k and v
// ([rows, n_kv_heads * head_dim]) also go to the caches' rows start_pos..
constexpr int kRopeMaxPairs = 128;  // head_dim up to kAttentionMaxHeadDim (256)
struct RopeFrequencies {
  double inv_freq[kRopeMaxPairs];
};
struct KvStore {
  const float* v;
  float* k_cache;
  float* v_cache;
};
cudaError_t rope_interleaved(cudaStream_t s, float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads,
                             int64_t head_dim, int64_t start_pos, const RopeFrequencies& freqs,
                             const StepParams* step, const KvStore* store = nullptr);
// Rows start_pos.. of both caches = k, v ([rows, width]).
cudaError_t store_kv(cudaStream_t s, float* k_cache, float* v_cache, const float* k, const float* v, int64_t rows,
                     int64_t width, int64_t start_pos, const StepParams* step);
cudaError_t swiglu(cudaStream_t s, float* out, const float* gate, const float* up, int64_t n);
cudaError_t add(cudaStream_t s, float* x, const float* y, int64_t n);
// x[t * width + i] += bias[i] for rows t in [0, rows).
cudaError_t add_bias(cudaStream_t s, float* x, const float* bias, int64_t rows, int64_t width);
// Each row's first largest element, by blocks of a chunk of the row each.
// `scratch` (argmax_scratch_bytes) must be zero before the first launch;
// each launch leaves it so.
inline int64_t argmax_chunks(int64_t n) { return n / 4096 < 1 ? 1 : n / 4096 > 128 ? 128 : n / 4096; }
size_t argmax_scratch_bytes(int64_t rows, int64_t n);
cudaError_t argmax_rows(cudaStream_t s, int32_t* out, const float* logits, int64_t rows, int64_t n, void* scratch);
// t[i] = offset + scale * synthetic_uniform(seed, i), stored as `type` in rows
// of `row_len` (Q8_0/Q4_0 in the split layout of q_layout.h).
cudaError_t fill_synthetic(cudaStream_t s, void* t, WeightType type, int64_t n, int64_t row_len, uint64_t seed,
                           float scale, float offset);
// ggml-ordered Q8_0/Q4_0 rows of `row_len` elements -> the split layout, in place.
cudaError_t split_quant_rows(cudaStream_t s, void* t, WeightType type, int64_t rows, int64_t row_len);
// f32 -> bf16, and Q8_0/Q4_0 weights (split rows of row_len) -> bf16 (for cuBLAS).
cudaError_t f32_to_bf16(cudaStream_t s, uint16_t* out, const float* x, int64_t n);
cudaError_t weights_to_bf16(cudaStream_t s, uint16_t* out, const void* w, WeightType type, int64_t n,
                            int64_t row_len);

// Reads `bytes` (a multiple of 16) once with `blocks` blocks; out: `blocks` words.
cudaError_t read_probe(cudaStream_t s, const void* data, size_t bytes, uint32_t* out, int blocks);

// Matrix-vector products for a few tokens: out_i[t, r] = dot(x[t], w_i[r]),
// reading each weight row once for all tokens. Up to 3 weights of one type
// share x (q/k/v, gate/up) in one launch.
constexpr int kMatvecMaxTokens = 16;
constexpr int kMatvecMaxTargets = 3;
struct MatvecTarget {
  const void* w;
  float* out;
  int64_t n_out;
};
struct MatvecArgs {
  MatvecTarget targets[kMatvecMaxTargets];
  int n_targets;
  WeightType type;
  const float* x;
  int64_t tokens;  // 1..kMatvecMaxTokens
  int64_t n_in;
};
cudaError_t matvec(cudaStream_t s, const MatvecArgs& args);

// One token's products with the layer's neighbours fused in
// (kernels_gemv.cu): out_i = norm(x) . w_i, where norm is RMSNorm by norm_w
// (or nothing when null), and then stored, added to out (the residual), or,
// with two targets (gate, up), out_gate = silu(gate) * up.
enum class GemvEpilogue : int { kStore = 0, kAccumulate = 1, kSwiglu = 2 };
struct GemvArgs {
  MatvecTarget targets[kMatvecMaxTargets];
  int n_targets;
  WeightType type;
  const float* x;       // [n_in]
  const float* norm_w;  // [n_in] or null
  float eps;
  int64_t n_in;
  GemvEpilogue epilogue;
};
// The activations staged per block must fit (f32: 4 bytes each; Q: 1.25),
// in this and in the device's opt-in limit of shared memory per block.
constexpr size_t kGemvMaxSharedBytes = 160 * 1024;
size_t gemv_shared_bytes(WeightType t, int64_t n_in);
// Whether gemv() takes these arguments: row lengths a multiple of 8 (bf16), 4
// (f32) or 256 (Q8_0/Q4_0, so split rows start 16-byte aligned), 16-byte
// aligned pointers, staged activations within the current device's limit
// (kGemvMaxSharedBytes at most).
bool gemv_applies(const GemvArgs& args);
// `variant` picks a kernel shape (rows per warp, loads in flight, warps per
// block) for a sweep; -1 is the default. cudaErrorInvalidValue for an unknown one.
cudaError_t gemv(cudaStream_t s, const GemvArgs& args, int variant = -1);
int gemv_variant_count(WeightType t);
const char* gemv_variant_name(WeightType t, int variant);

// Split-K attention for few query tokens (decode): each block reduces one
// chunk of the cache for one (token, head), and the last to finish merges
// the chunks. `partials` holds tokens * n_heads * splits * (head_dim + 2)
// floats; `counters`, tokens * n_heads words, must be zero before the first
// launch (each launch leaves them zero).
struct AttentionArgs {
  float* out;
  const float* q;
  const float* k_cache;
  const float* v_cache;
  int64_t tokens, n_heads, n_kv_heads, head_dim, start_pos;
  int64_t splits;  // >= attention_splits(start_pos + tokens); extra splits are empty
  const StepParams* step;
};
constexpr int64_t kAttentionChunk = 64;
constexpr int64_t kAttentionMaxHeadDim = 256;
__host__ __device__ inline int64_t attention_splits(int64_t positions) {
  return (positions + kAttentionChunk - 1) / kAttentionChunk;
}
cudaError_t attention_split_k(cudaStream_t s, const AttentionArgs& a, float* partials, unsigned* counters);
// Prefill: scores [n_heads, tokens, len] from cuBLAS -> causal softmax in place
// (query t sees positions <= start_pos + t; later ones become 0).
cudaError_t causal_softmax(cudaStream_t s, float* scores, int64_t n_heads, int64_t tokens, int64_t len,
                           int64_t start_pos, float scale);

// A batched step over a paged KV cache (kernels_paged.cu; runtime/backend.h
// PagedAttention): per-token positions, slots and sequences, i32 in device
// memory, so one launch serves every sequence of the step.
cudaError_t rope_at(cudaStream_t s, float* q, float* k, const int32_t* positions, int64_t rows, int64_t n_heads,
                    int64_t n_kv_heads, int64_t head_dim, const RopeFrequencies& freqs);
// Pool rows slots[t] = k[t], v[t] ([rows, width]).
cudaError_t store_kv_paged(cudaStream_t s, float* k_pool, float* v_pool, const float* k, const float* v,
                           const int32_t* slots, int64_t rows, int64_t width);
struct PagedAttentionArgs {
  float* out;
  const float* q;
  const float* k_pool;
  const float* v_pool;
  const int32_t* positions;     // [tokens]
  const int32_t* token_seq;     // [tokens]
  const int32_t* block_tables;  // [sequences, table_stride]
  int64_t table_stride, block_size;
  int64_t tokens, n_heads, n_kv_heads, head_dim;
};
cudaError_t paged_attention(cudaStream_t s, const PagedAttentionArgs& a);

}  // namespace tandem::cuda
