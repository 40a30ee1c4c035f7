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

#include "runtime/cpu/attention_rows.h"

namespace tandem::cpu {

enum class Isa {
  kScalar,
  kAvx2,  // x86-64 with AVX2, FMA and F16C, detected at run time
  // x86-64 with AVX-512 F, BW and VL on top of kAvx2's features: the quantized
  // kernels use 512-bit registers (and VNNI's vpdpbusd when the CPU has it);
  // the f32 kernels are kAvx2's, which already stream memory at full speed,
  // except the matmuls: matmul_rows for several tokens (compute-bound: 4x6
  // zmm tiles) and matmul_panels (32 rows x up to 10 tokens).
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

// matmul_rows() with the weights in 32-row panels (DType::kF32Panels,
// runtime/panel_layout.h): the same y, and rows outside [row_begin, row_end)
// again untouched, at any range (a block cut by the range is computed whole
// and stored in part, so ranges at multiples of 32 waste nothing). Each
// output is one sum over i in order, where matmul_rows sums 16 lanes apart,
// so the two agree to rounding, not bit for bit. AVX-512 has the kernel the
// layout is for; every other ISA runs the scalar one (slow: the layout is
// only chosen when panels_pay()).
void matmul_panels(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in, int64_t n_out,
                   int64_t row_begin, int64_t row_end);

// Whether the active ISA computes with f32_panels weights faster than with
// row-major ones (AVX-512: the matmul 7-40% shorter at 2-64 tokens,
// docs/benchmarks.md).
bool panels_pay();

// `iterations` rounds of independent f32 multiply-adds on the active ISA's
// widest vectors, registers only (enough chains to cover the FMA latency),
// so nothing but the FMA units bounds it; returns the FLOPs done (2 an FMA).
// Timed by the caller, it is one thread's compute roof, what `tandem bench
// kernels` holds the matmuls against.
double fma_loop(int64_t iterations);

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

// rope_interleaved() in two halves, for rows that share a position (a
// step's q and k at every layer): rope_angles() writes the cos and sin of
// each of `pairs` angles pos * inv_freq[j] (computed as rope_interleaved
// does: the angle in double, then rounded to float), rope_rotate() turns
// the pairs of n_heads heads by them. rope_rotate(v, n_heads, head_dim,
// cos, sin) after rope_angles(cos, sin, pos, head_dim / 2, inv_freq) is bit
// for bit rope_interleaved(v, n_heads, head_dim, pos, inv_freq).
void rope_angles(float* cos, float* sin, int64_t pos, int64_t pairs, const double* inv_freq);
void rope_rotate(float* v, int64_t n_heads, int64_t head_dim, const float* cos, const float* sin);

// out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x)). out may alias gate.
void swiglu(float* out, const float* gate, const float* up, int64_t n);

// y[i] += x[i]
void add(float* y, const float* x, int64_t n);

// One token's query heads attending over positions [0, n_pos) of a KV cache
// (heads: AttentionHeads in attention_rows.h), for each head j:
//   score_j[p] = dot(q_j, k_j(p)) / sqrt(head_dim)
//   out_j      = sum_p softmax(score_j)[p] * v_j(p)
// q and out hold heads.n_heads * head_dim values; k_cache / v_cache point at
// the first value of query head 0's KV head at position 0, consecutive
// positions heads.kv_stride floats apart. `scratch` holds
// attention_scratch_floats() floats; afterwards scratch[j * n_pos + p] is
// head j's softmax weight of position p. n_pos >= 1. out may alias q. On each
// ISA the result is bit for bit that of its dot(), softmax() and axpy()
// composed as above (out_j zeroed, then one axpy per position in position
// order), with the positions as the outer loop so each cache row is read once.
void attention_heads(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t n_pos,
                     const AttentionHeads& heads, float* scratch);

// attention_heads() over a paged cache: position p lives at pool row
// block_table[p / block_size] * block_size + p % block_size, and k_pool /
// v_pool point at query head 0's KV head in pool row 0. Each ISA runs the
// same code as for attention_heads(), only the rows differ, so on one ISA
// the two agree bit for bit. out may alias q.
void attention_heads_paged(float* out, const float* q, const float* k_pool, const float* v_pool, int64_t n_pos,
                           const int32_t* block_table, int64_t block_size, const AttentionHeads& heads,
                           float* scratch);

// attention_heads_paged() over a pool of f16 keys and values (their bits):
// on each ISA, bit for bit the f32 call on the same values widened.
void attention_heads_paged_f16(float* out, const float* q, const uint16_t* k_pool, const uint16_t* v_pool,
                               int64_t n_pos, const int32_t* block_table, int64_t block_size,
                               const AttentionHeads& heads, float* scratch);

// out[i] = in[i] as IEEE half, rounded to nearest even, subnormals kept
// (f16_from_f32 of quant_blocks.h): the same bits on every ISA.
void f16_from_f32_row(uint16_t* out, const float* in, int64_t n);

// Floats of scratch attention_heads() needs: each head's scores, then its sums.
inline int64_t attention_scratch_floats(int64_t n_pos, const AttentionHeads& heads) {
  return heads.n_heads * (n_pos + heads.head_dim);
}

}  // namespace tandem::cpu
