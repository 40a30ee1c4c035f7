// The per-ISA variants behind kernels_quant.h, for the dispatcher and the
// tests only (callers go through kernels_quant.h). Block-level signatures:
// n_blocks = n / 32 for Q8_0/Q4_0, n_super = n / 256 for Q4_K (x then holds
// 8 * n_super activation blocks); the dispatcher checks n once.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu/kernels_quant.h"

namespace tandem::cpu {

struct QuantKernels {
  const char* name;  // "scalar", "avx2", "avx512", "avx512-vnni", "neon", "neon-dotprod"
  void (*quantize_activations)(ActivationBlock* out, const float* x, int64_t n_blocks);
  float (*dot_q8_0)(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
  float (*dot_q4_0)(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
  float (*dot_q4_k)(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super);
  float (*dot_f16)(const uint16_t* w_row, const float* x, int64_t n);
  float (*dot_bf16)(const uint16_t* w_row, const float* x, int64_t n);
};

// The variant kernels_quant.h uses under `isa`: the best one within it that
// this CPU has (avx512-vnni over avx512, neon-dotprod over neon).
const QuantKernels& quant_kernels_for(Isa isa);
// Every variant this CPU and build can run, scalar first: what the tests loop over.
std::vector<const QuantKernels*> supported_quant_kernels();

// Each namespace's functions have QuantKernels' signatures. Only the scalar
// ones exist in every build; the others under the macros of kernels_internal.h.
namespace scalar {
void quantize_activations(ActivationBlock* out, const float* x, int64_t n_blocks);
float dot_q8_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_k(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super);
float dot_f16(const uint16_t* w_row, const float* x, int64_t n);
float dot_bf16(const uint16_t* w_row, const float* x, int64_t n);
}  // namespace scalar

namespace avx2 {  // AVX2 + FMA + F16C
void quantize_activations(ActivationBlock* out, const float* x, int64_t n_blocks);
float dot_q8_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_k(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super);
float dot_f16(const uint16_t* w_row, const float* x, int64_t n);
float dot_bf16(const uint16_t* w_row, const float* x, int64_t n);
}  // namespace avx2

namespace avx512 {  // AVX-512 F/BW/VL; the _vnni ones also need AVX512_VNNI
void quantize_activations(ActivationBlock* out, const float* x, int64_t n_blocks);
float dot_q8_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_k(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super);
float dot_q8_0_vnni(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_0_vnni(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_k_vnni(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super);
float dot_f16(const uint16_t* w_row, const float* x, int64_t n);
float dot_bf16(const uint16_t* w_row, const float* x, int64_t n);
}  // namespace avx512

namespace neon {  // the _dotprod ones need the dot-product extension (HWCAP_ASIMDDP)
void quantize_activations(ActivationBlock* out, const float* x, int64_t n_blocks);
float dot_q8_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_k(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super);
float dot_q8_0_dotprod(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_0_dotprod(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks);
float dot_q4_k_dotprod(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super);
float dot_f16(const uint16_t* w_row, const float* x, int64_t n);
float dot_bf16(const uint16_t* w_row, const float* x, int64_t n);
}  // namespace neon

}  // namespace tandem::cpu
