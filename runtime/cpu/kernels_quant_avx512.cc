// AVX-512 (F, BW, VL) versions of the quantized kernels, two Q blocks per
// 512-bit register, without VNNI (kernels_quant_avx512_vnni.cc has those).
// Built with -mavx512f -mavx512bw -mavx512vl (and the AVX2 flags) and run
// only after best_isa() saw them. The rules of kernels_avx2.cc hold: no inline
// function from a shared header, only intrinsics and builtins, every load
// unaligned.
#include "runtime/cpu/kernels_quant_avx512_loops.h"

namespace tandem::cpu::avx512 {
namespace {

struct MaddubsProducts {
  static __m512i of(__m512i u, __m512i s) {
    return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
  }
};

}  // namespace

void quantize_activations(ActivationBlock* out, const float* x, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, x += kActivationBlock) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    // The same two roundings as scalar::quantize_activations, hence the same bits.
    const float scale = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1))) / 127.0f;
    const __m512 inverse = _mm512_set1_ps(scale != 0.0f ? 1.0f / scale : 0.0f);
    out[b].scale = scale;
    // cvtps rounds to nearest even (the default MXCSR mode); |q| <= 127, so
    // the saturating narrow only matters for non-finite input.
    const __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, inverse)));
    const __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, inverse)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].q), q0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].q + 16), q1);
    int32_t sum = 0;  // as scalar::quantize_activations: exact, so every version agrees
    for (int i = 0; i < kActivationBlock; ++i) sum += out[b].q[i];
    out[b].sum = sum;
  }
}

float dot_q8_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  return q8_0_row<MaddubsProducts>(w_row, x, n_blocks);
}

float dot_q4_0(const uint8_t* w_row, const ActivationBlock* x, int64_t n_blocks) {
  return q4_0_row<MaddubsProducts>(w_row, x, n_blocks);
}

float dot_q4_k(const uint8_t* w_row, const ActivationBlock* x, int64_t n_super) {
  return q4_k_row<MaddubsProducts>(w_row, x, n_super);
}

float dot_f16(const uint16_t* w_row, const float* x, int64_t n) { return wide_row<false>(w_row, x, n); }

float dot_bf16(const uint16_t* w_row, const float* x, int64_t n) { return wide_row<true>(w_row, x, n); }

}  // namespace tandem::cpu::avx512
