// CPU kernels: the numeric building blocks of the CPU backend, on plain float
// arrays. Each has a portable scalar version (the reference) and SIMD versions
// (AVX2+FMA on x86-64, NEON on AArch64) chosen once at run time from the CPU's
// features; the kernel tests compare every version against a float64 reference.
// The kernels for weights narrower than f32 (f16, bf16, Q8_0, Q4_0) are in
// runtime/cpu/kernels_quant.h and follow the same ISA choice.
//
// Threading is the caller's job: the kernels are single-threaded and work on
// the slice they are given (rows, heads), so a thread pool can split the work.
#pragma once

#include <cstdint>
#include <string_view>

namespace tandem::cpu {

enum class Isa {
  kScalar,
  kAvx2,  // x86-64 with AVX2, FMA and F16C, detected at run time
  // x86-64 with AVX-512 F, BW and VL on top of kAvx2's features: the quantized
  // kernels use 512-bit registers (and VNNI's vpdpbusd when the CPU has it);
  // the f32 kernels are kAvx2's, which already stream memory at full speed,
  // except matmul_rows for several tokens (compute-bound: 4x6 zmm tiles).
  kAvx512,
  kNeon,  // AArch64 Advanced SIMD: part of the architecture, so every aarch64 build has it
};

std::string_view isa_name(Isa isa);
// The best instruction set this CPU supports (and this build compiled).
Isa best_isa();
// Whether this CPU and build can run `isa`.
bool isa_supported(Isa isa);
// The instruction set the kernels below use. Starts as best_isa(), or as the
// TANDEM_ISA environment variable says ("scalar", "avx2", "avx512", "neon") when it names one
// the CPU supports. Not thread-safe: set it before running kernels.
Isa active_isa();
// Returns false (and changes nothing) if `isa` is not supported here.
bool set_active_isa(Isa isa);

// sum_i a[i] * b[i]
float dot(const float* a, const float* b, int64_t n);

// Matrix multiply with row-major weights, as the model stores them:
//   y[t * n_out + r] = sum_i x[t * n_in + i] * w[r * n_in + i]
// for tokens t in [0, n_tokens) and output rows r in [row_begin, row_end).
// Rows outside the range are not touched, so threads can split the rows.
// With several tokens, each weight row is read once per group of tokens.
void matmul_rows(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in,
                 int64_t n_out, int64_t row_begin, int64_t row_end);

// y[i] += a * x[i]
void axpy(float* y, float a, const float* x, int64_t n);

// out[i] = x[i] * w[i] / sqrt(mean(x^2) + eps). out may alias x.
void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps);

// In place: x[i] = exp(x[i] - max) / sum_j exp(x[j] - max). n >= 1.
void softmax(float* x, int64_t n);

// RoPE as llama2.c applies it: within each head of `head_dim` values, pairs
// (2j, 2j+1) are rotated by the angle pos * inv_freq[j] (llama2.c's
// theta^(-2j / head_dim): runtime/rope_frequencies.h builds the table).
// `v` holds n_heads * head_dim values. head_dim must be even.
void rope_interleaved(float* v, int64_t n_heads, int64_t head_dim, int64_t pos, const double* inv_freq);

// out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x)). out may alias gate.
void swiglu(float* out, const float* gate, const float* up, int64_t n);

// y[i] += x[i]
void add(float* y, const float* x, int64_t n);

// One query head attending over positions [0, n_pos) of a KV cache:
//   score[p] = dot(q, k_cache + p * kv_stride) / sqrt(head_dim)
//   out      = sum_p softmax(score)[p] * (v_cache + p * kv_stride)
// q and out hold head_dim values; k_cache/v_cache point at this head's first
// value at position 0, consecutive positions kv_stride floats apart. `scores`
// is scratch space for n_pos floats. n_pos >= 1. out may alias q. On each ISA
// the result is bit for bit that of its dot(), softmax() and axpy() composed
// as above (out zeroed, then one axpy per position in position order), though
// out stays in registers across positions rather than going through memory.
void attention_head(float* out, const float* q, const float* k_cache, const float* v_cache,
                    int64_t n_pos, int64_t kv_stride, int64_t head_dim, float* scores);

// attention_head() over a paged cache: position p lives at pool row
// block_table[p / block_size] * block_size + p % block_size, and k_pool /
// v_pool point at this head's first value of pool row 0 (rows kv_stride
// floats apart). Each ISA runs the same code as for attention_head(), only
// the rows differ, so on one ISA the two agree bit for bit. out may alias q.
void attention_head_paged(float* out, const float* q, const float* k_pool, const float* v_pool, int64_t n_pos,
                          const int32_t* block_table, int64_t block_size, int64_t kv_stride, int64_t head_dim,
                          float* scores);

}  // namespace tandem::cpu
