// The NEON Q8_0/Q4_0/Q4_K dot products with the dot-product extension: the loops
// of kernels_quant_neon_loops.h with sdot, which multiplies and sums four
// byte pairs per int32 lane in one instruction. Built with
// -march=armv8.2-a+dotprod; run only where kernels_quant.cc saw HWCAP_ASIMDDP.
#include "runtime/cpu/kernels_quant_neon_loops.h"

namespace tandem::cpu::neon {
namespace {

struct DotprodProducts {
  int32x4_t operator()(int8x16_t a0, int8x16_t a1, const ActivationBlock& x) const {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), a0, vld1q_s8(x.q)), a1, vld1q_s8(x.q + 16));
  }
};

}  // namespace

float dot_q8_0_dotprod(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  return q_row<kQ8Bytes>(w_row, x, n_blocks, q8_values, DotprodProducts{});
}

float dot_q4_0_dotprod(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  return q_row<kQ4Bytes>(w_row, x, n_blocks, q4_block_values, DotprodProducts{});
}

float dot_q4_k_dotprod(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super) {
  return q4_k_row(w_row, x, n_super, DotprodProducts{});
}

}  // namespace tandem::cpu::neon
