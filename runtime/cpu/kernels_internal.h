// The per-ISA variants behind the dispatching kernels of kernels.h, and the
// pieces of the dispatcher the tests need to see. Not for use outside
// runtime/cpu and its tests: callers go through kernels.h so the ISA choice
// stays in one place.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "runtime/cpu/kernels.h"

namespace tandem::cpu {

// "scalar" -> kScalar, "avx2" -> kAvx2, "avx512" -> kAvx512, "neon" -> kNeon (exactly as isa_name spells them);
// anything else, including "", -> nullopt.
std::optional<Isa> parse_isa_name(std::string_view name);

// The ISA to start with given TANDEM_ISA's value (nullptr when unset): the
// named one when it parses and isa_supported() says yes, else best_isa().
Isa choose_initial_isa(const char* tandem_isa_env);

// matmul_rows keeps a block of token rows hot in cache while it walks the
// weight rows, so each weight row comes from memory once per block rather
// than once per group of 4 tokens. Returns a multiple of 4, at least 4.
// Out of line on purpose: an inline function here would also be compiled
// with -mavx2 in kernels_avx2.cc, and the linker may keep that copy for all.
// (The same holds for kernels_neon.cc the day it gains feature flags.)
int64_t matmul_token_block(int64_t n_in);

// All variant sets have the signatures and semantics of kernels.h; the
// preconditions (n >= 1, even head_dim, row range) are checked once, by the
// dispatcher in kernels.cc.

// Portable C++: the reference, and what non-x86 builds run.
namespace scalar {
float dot(const float* a, const float* b, int64_t n);
void matmul_rows(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in,
                 int64_t n_out, int64_t row_begin, int64_t row_end);
// The reference for every ISA, and what all but AVX-512 run (kernels.h).
void matmul_panels(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in, int64_t n_out,
                   int64_t row_begin, int64_t row_end);
void axpy(float* y, float a, const float* x, int64_t n);
void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps);
void softmax(float* x, int64_t n);
void rope_interleaved(float* v, int64_t n_heads, int64_t head_dim, int64_t pos, const double* inv_freq);
// The only copies: kernels.cc calls them for every ISA, as it does
// rope_interleaved (why there is no SIMD RoPE: the avx2 namespace below).
void rope_angles(float* cos, float* sin, int64_t pos, int64_t pairs, const double* inv_freq);
void rope_rotate(float* v, int64_t n_heads, int64_t head_dim, const float* cos, const float* sin);
void swiglu(float* out, const float* gate, const float* up, int64_t n);
void add(float* y, const float* x, int64_t n);
void attention_heads(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t n_pos,
                     const AttentionHeads& heads, float* scratch);
void attention_heads_paged(float* out, const float* q, const float* k_pool, const float* v_pool, int64_t n_pos,
                           const int32_t* block_table, int64_t block_size, const AttentionHeads& heads,
                           float* scratch);
void attention_heads_paged_f16(float* out, const float* q, const uint16_t* k_pool, const uint16_t* v_pool,
                               int64_t n_pos, const int32_t* block_table, int64_t block_size,
                               const AttentionHeads& heads, float* scratch);
void f16_from_f32_row(uint16_t* out, const float* in, int64_t n);
double fma_loop(int64_t iterations);
}  // namespace scalar

// AVX2+FMA, defined only in builds with TANDEM_HAVE_AVX2_KERNELS (x86-64), so
// reference these only under that macro. There is no avx2 rope_interleaved:
// its cost is one sin/cos per pair, shared by all heads, so the avx2 table
// uses scalar::rope_interleaved.
namespace avx2 {
float dot(const float* a, const float* b, int64_t n);
void matmul_rows(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in,
                 int64_t n_out, int64_t row_begin, int64_t row_end);
void axpy(float* y, float a, const float* x, int64_t n);
void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps);
void softmax(float* x, int64_t n);
void swiglu(float* out, const float* gate, const float* up, int64_t n);
void add(float* y, const float* x, int64_t n);
void attention_heads(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t n_pos,
                     const AttentionHeads& heads, float* scratch);
void attention_heads_paged(float* out, const float* q, const float* k_pool, const float* v_pool, int64_t n_pos,
                           const int32_t* block_table, int64_t block_size, const AttentionHeads& heads,
                           float* scratch);
void attention_heads_paged_f16(float* out, const float* q, const uint16_t* k_pool, const uint16_t* v_pool,
                               int64_t n_pos, const int32_t* block_table, int64_t block_size,
                               const AttentionHeads& heads, float* scratch);
void f16_from_f32_row(uint16_t* out, const float* in, int64_t n);
double fma_loop(int64_t iterations);
}  // namespace avx2

// AVX-512 F/VL, defined only in builds with TANDEM_HAVE_AVX2_KERNELS (x86-64).
// Only the matmuls: for several tokens they are compute-bound and gain from
// 32 zmm registers; every other f32 kernel of kAvx512 is kAvx2's.
namespace avx512 {
void matmul_rows(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in,
                 int64_t n_out, int64_t row_begin, int64_t row_end);
void matmul_panels(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in, int64_t n_out,
                   int64_t row_begin, int64_t row_end);
double fma_loop(int64_t iterations);
}  // namespace avx512

// NEON, defined only in builds with TANDEM_HAVE_NEON_KERNELS (aarch64), so
// reference these only under that macro. No neon rope_interleaved, for the
// reason given for avx2.
namespace neon {
float dot(const float* a, const float* b, int64_t n);
void matmul_rows(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in,
                 int64_t n_out, int64_t row_begin, int64_t row_end);
void axpy(float* y, float a, const float* x, int64_t n);
void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps);
void softmax(float* x, int64_t n);
void swiglu(float* out, const float* gate, const float* up, int64_t n);
void add(float* y, const float* x, int64_t n);
void attention_heads(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t n_pos,
                     const AttentionHeads& heads, float* scratch);
void attention_heads_paged(float* out, const float* q, const float* k_pool, const float* v_pool, int64_t n_pos,
                           const int32_t* block_table, int64_t block_size, const AttentionHeads& heads,
                           float* scratch);
void attention_heads_paged_f16(float* out, const float* q, const uint16_t* k_pool, const uint16_t* v_pool,
                               int64_t n_pos, const int32_t* block_table, int64_t block_size,
                               const AttentionHeads& heads, float* scratch);
void f16_from_f32_row(uint16_t* out, const float* in, int64_t n);
double fma_loop(int64_t iterations);
}  // namespace neon

}  // namespace tandem::cpu
