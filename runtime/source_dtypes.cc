#include "runtime/source_dtypes.h"

#include <cmath>
#include <cstring>

#include "runtime/quant_blocks.h"
#include "runtime/quantize.h"
#include "runtime/status.h"

namespace tandem {
namespace {

constexpr int kSuperBlock = 256;

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return quant::f32_from_f16(h);
}

// One Q6_K super-block: 2 halves of 128; in each, element l + 32 k (k = 0..3)
// takes its low nibble from ql (bytes l or l + 32, low or high nibble) and its
// top 2 bits from qh[l] bits 2k..2k+1; scales cover 16 elements each.
void decode_q6_k(const uint8_t* block, float* out) {
  const uint8_t* ql = block;
  const uint8_t* qh = block + 128;
  const auto* scales = reinterpret_cast<const int8_t*>(block + 192);
  const float d = f16_at(block + 208);
  for (int half = 0; half < 2; ++half) {
    const uint8_t* l_bytes = ql + 64 * half;
    const uint8_t* h_bytes = qh + 32 * half;
    const int8_t* sc = scales + 8 * half;
    float* y = out + 128 * half;
    for (int l = 0; l < 32; ++l) {
      const int q[4] = {
          ((l_bytes[l] & 0x0f) | (((h_bytes[l] >> 0) & 3) << 4)) - 32,
          ((l_bytes[l + 32] & 0x0f) | (((h_bytes[l] >> 2) & 3) << 4)) - 32,
          ((l_bytes[l] >> 4) | (((h_bytes[l] >> 4) & 3) << 4)) - 32,
          ((l_bytes[l + 32] >> 4) | (((h_bytes[l] >> 6) & 3) << 4)) - 32,
      };
      for (int k = 0; k < 4; ++k)
        y[l + 32 * k] = d * static_cast<float>(sc[l / 16 + 2 * k]) * static_cast<float>(q[k]);
    }
  }
}

}  // namespace

float f32_from_e4m3(uint8_t v) {
  const float sign = (v & 0x80) ? -1.0f : 1.0f;
  const int exp = (v >> 3) & 0x0f, mant = v & 0x07;
  if (exp == 0x0f && mant == 0x07) return std::nanf("");
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant) / 8.0f, -6);
  return sign * std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, exp - 7);
}

std::optional<DType> same_layout_dtype(SourceDType dtype) {
  switch (dtype) {
    case SourceDType::kF32: return DType::kF32;
    case SourceDType::kF16: return DType::kF16;
    case SourceDType::kBF16: return DType::kBF16;
    case SourceDType::kQ8_0: return DType::kQ8_0;
    case SourceDType::kQ4_0: return DType::kQ4_0;
    case SourceDType::kQ4_K: return DType::kQ4K;
    default: return std::nullopt;
  }
}

void decode_source_row(SourceDType dtype, const uint8_t* row, int64_t first, int64_t n, float* out) {
  const int64_t block = source_block_elems(dtype);
  TANDEM_CHECK(first % block == 0 && n % block == 0);
  const uint8_t* p = row + first / block * source_block_bytes(dtype);
  if (const std::optional<DType> plain = same_layout_dtype(dtype)) {
    dequantize_row(*plain, p, n, out);
    return;
  }
  switch (dtype) {
    case SourceDType::kQ6_K:
      for (int64_t b = 0; b < n / kSuperBlock; ++b) decode_q6_k(p + b * 210, out + b * kSuperBlock);
      return;
    case SourceDType::kF8E4M3:
      for (int64_t i = 0; i < n; ++i) out[i] = f32_from_e4m3(p[i]);
      return;
    default: TANDEM_CHECK_MSG(false, std::string(source_dtype_name(dtype)));
  }
}

}  // namespace tandem
