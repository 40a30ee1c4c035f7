// Dispatch of the quantized kernels (kernels_quant.h) and their matmul over
// rows. The variant follows active_isa(); the features within an ISA that
// have no Isa of their own (AVX512_VNNI, the NEON dot product) are detected
// once, on first use.
#include "runtime/cpu/kernels_quant.h"

#include <algorithm>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

#include "runtime/cpu/kernels_quant_internal.h"
#include "runtime/status.h"

namespace tandem::cpu {
namespace {

constexpr QuantKernels kScalar = {"scalar", &scalar::quantize_activations, &scalar::dot_q8_0, &scalar::dot_q4_0,
                                  &scalar::dot_q4_k, &scalar::dot_f16, &scalar::dot_bf16};

#if defined(TANDEM_HAVE_AVX2_KERNELS) && (defined(__x86_64__) || defined(__i386__))
#define TANDEM_QUANT_X86 1
constexpr QuantKernels kAvx2 = {"avx2", &avx2::quantize_activations, &avx2::dot_q8_0, &avx2::dot_q4_0,
                                &avx2::dot_q4_k, &avx2::dot_f16, &avx2::dot_bf16};
constexpr QuantKernels kAvx512 = {"avx512", &avx512::quantize_activations, &avx512::dot_q8_0,
                                  &avx512::dot_q4_0, &avx512::dot_q4_k, &avx512::dot_f16, &avx512::dot_bf16};
constexpr QuantKernels kAvx512Vnni = {"avx512-vnni", &avx512::quantize_activations, &avx512::dot_q8_0_vnni,
                                      &avx512::dot_q4_0_vnni, &avx512::dot_q4_k_vnni, &avx512::dot_f16, &avx512::dot_bf16};

bool cpu_has_vnni() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") != 0;
  }();
  return has;
}
#endif

#if defined(TANDEM_HAVE_NEON_KERNELS) && defined(__aarch64__)
#define TANDEM_QUANT_NEON 1
constexpr QuantKernels kNeon = {"neon", &neon::quantize_activations, &neon::dot_q8_0, &neon::dot_q4_0,
                                &neon::dot_q4_k, &neon::dot_f16, &neon::dot_bf16};
constexpr QuantKernels kNeonDotprod = {"neon-dotprod", &neon::quantize_activations, &neon::dot_q8_0_dotprod,
                                       &neon::dot_q4_0_dotprod, &neon::dot_q4_k_dotprod, &neon::dot_f16, &neon::dot_bf16};

bool cpu_has_dotprod() {
#if defined(__linux__)
  constexpr unsigned long kHwcapAsimdDp = 1ul << 20;  // HWCAP_ASIMDDP of <asm/hwcap.h>
  static const bool has = (getauxval(AT_HWCAP) & kHwcapAsimdDp) != 0;
  return has;
#else
  return false;  // no portable check: plain NEON is always correct
#endif
}
#endif

constexpr int64_t kQ4KElems = 256;

const QuantKernels& active() { return quant_kernels_for(active_isa()); }

bool is_q_format(DType dtype) { return dtype == DType::kQ8_0 || dtype == DType::kQ4_0 || dtype == DType::kQ4K; }

// `dot(w_row, t)` for every (token, row) of the range: each weight row is
// read from memory once and reused, from L1, by every token.
template <typename Dot>
void rows_times_tokens(float* y, const uint8_t* w, size_t row_bytes, int64_t n_tokens, int64_t n_out,
                       int64_t row_begin, int64_t row_end, Dot dot) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* w_row = w + static_cast<size_t>(r) * row_bytes;
    for (int64_t t = 0; t < n_tokens; ++t) y[t * n_out + r] = dot(w_row, t);
  }
}

}  // namespace

const QuantKernels& quant_kernels_for(Isa isa) {
  switch (isa) {
#ifdef TANDEM_QUANT_X86
    case Isa::kAvx2: return kAvx2;
    case Isa::kAvx512: return cpu_has_vnni() ? kAvx512Vnni : kAvx512;
#endif
#ifdef TANDEM_QUANT_NEON
    case Isa::kNeon: return cpu_has_dotprod() ? kNeonDotprod : kNeon;
#endif
    default: return kScalar;
  }
}

std::vector<const QuantKernels*> supported_quant_kernels() {
  std::vector<const QuantKernels*> out = {&kScalar};
#ifdef TANDEM_QUANT_X86
  if (isa_supported(Isa::kAvx2)) out.push_back(&kAvx2);
  if (isa_supported(Isa::kAvx512)) out.push_back(&kAvx512);
  if (isa_supported(Isa::kAvx512) && cpu_has_vnni()) out.push_back(&kAvx512Vnni);
#endif
#ifdef TANDEM_QUANT_NEON
  out.push_back(&kNeon);
  if (cpu_has_dotprod()) out.push_back(&kNeonDotprod);
#endif
  return out;
}

bool matmul_dtype_supported(DType dtype) {
  switch (dtype) {
    case DType::kF32:
    case DType::kF32Panels:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4K: return true;
    default: return false;
  }
}

bool needs_quantized_activations(DType dtype) { return is_q_format(dtype); }

void quantize_activations(ActivationBlock* out, const float* x, int64_t n) {
  TANDEM_CHECK(n % kActivationBlock == 0);
  active().quantize_activations(out, x, n / kActivationBlock);
}

float dot_q8_0(const void* w_row, const ActivationBlock* x, int64_t n) {
  TANDEM_CHECK(n % kActivationBlock == 0);
  return active().dot_q8_0(static_cast<const uint8_t*>(w_row), x, n / kActivationBlock);
}

float dot_q4_0(const void* w_row, const ActivationBlock* x, int64_t n) {
  TANDEM_CHECK(n % kActivationBlock == 0);
  return active().dot_q4_0(static_cast<const uint8_t*>(w_row), x, n / kActivationBlock);
}

float dot_q4_k(const void* w_row, const ActivationBlock* x, int64_t n) {
  TANDEM_CHECK(n % kQ4KElems == 0);
  return active().dot_q4_k(static_cast<const uint8_t*>(w_row), x, n / kQ4KElems);
}

float dot_f16(const void* w_row, const float* x, int64_t n) {
  return active().dot_f16(static_cast<const uint16_t*>(w_row), x, n);
}

float dot_bf16(const void* w_row, const float* x, int64_t n) {
  return active().dot_bf16(static_cast<const uint16_t*>(w_row), x, n);
}

void matmul_rows_typed(float* y, const float* x, const ActivationBlock* xq, const void* w, DType dtype,
                       int64_t n_tokens, int64_t n_in, int64_t n_out, int64_t row_begin, int64_t row_end) {
  TANDEM_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= n_out);
  TANDEM_CHECK_MSG(matmul_dtype_supported(dtype), std::string(dtype_name(dtype)));
  if (dtype == DType::kF32) {
    matmul_rows(y, x, static_cast<const float*>(w), n_tokens, n_in, n_out, row_begin, row_end);
    return;
  }
  if (dtype == DType::kF32Panels) {
    matmul_panels(y, x, static_cast<const float*>(w), n_tokens, n_in, n_out, row_begin, row_end);
    return;
  }
  const QuantKernels& k = active();
  const auto* bytes = static_cast<const uint8_t*>(w);
  const size_t row_bytes = static_cast<size_t>(n_in / dtype_block_elems(dtype) * dtype_block_bytes(dtype));
  if (is_q_format(dtype)) {
    TANDEM_CHECK(n_in % dtype_block_elems(dtype) == 0 && (xq != nullptr || n_tokens * n_in == 0));
    const int64_t n_blocks = n_in / kActivationBlock;
    // Q4_K's kernels count super-blocks of 256, the others blocks of 32.
    const auto dot = dtype == DType::kQ8_0 ? k.dot_q8_0 : dtype == DType::kQ4_0 ? k.dot_q4_0 : k.dot_q4_k;
    const int64_t n_units = n_in / dtype_block_elems(dtype);
    rows_times_tokens(y, bytes, row_bytes, n_tokens, n_out, row_begin, row_end,
                      [&](const uint8_t* w_row, int64_t t) { return dot(w_row, xq + t * n_blocks, n_units); });
    return;
  }
  const auto dot = dtype == DType::kF16 ? k.dot_f16 : k.dot_bf16;
  rows_times_tokens(y, bytes, row_bytes, n_tokens, n_out, row_begin, row_end, [&](const uint8_t* w_row, int64_t t) {
    return dot(reinterpret_cast<const uint16_t*>(w_row), x + t * n_in, n_in);
  });
}

}  // namespace tandem::cpu
