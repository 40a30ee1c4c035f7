// The AVX512_VNNI versions of the Q8_0/Q4_0/Q4_K dot products: the loops of
// kernels_quant_avx512_loops.h with vpdpbusd, which multiplies and sums four
// byte pairs per int32 lane in one instruction instead of maddubs + madd.
// Built with -mavx512vnni on top of kernels_quant_avx512.cc's flags; run only
// where kernels_quant.cc saw avx512vnni at run time.
#include "runtime/cpu/kernels_quant_avx512_loops.h"

namespace tandem::cpu::avx512 {
namespace {

struct VnniProducts {
  static __m512i of(__m512i u, __m512i s) { return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s); }
};

}  // namespace

float dot_q8_0_vnni(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  return q8_0_row<VnniProducts>(w_row, x, n_blocks);
}

float dot_q4_0_vnni(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  return q4_0_row<VnniProducts>(w_row, x, n_blocks);
}

float dot_q4_k_vnni(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super) {
  return q4_k_row<VnniProducts>(w_row, x, n_super);
}

}  // namespace tandem::cpu::avx512
