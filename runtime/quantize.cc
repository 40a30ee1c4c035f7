#include "runtime/quantize.h"

#include <cstring>
#include <new>
#include <vector>

#include "runtime/quant_blocks.h"
#include "runtime/quantize_q4k.h"

namespace tandem {

bool storable_as(DType dtype, int64_t row_length) {
  switch (dtype) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16: return true;
    case DType::kQ8_0:
    case DType::kQ4_0: return row_length % quant::kBlock == 0;
    case DType::kQ4K: return row_length % quant::kQ4KBlock == 0;
    default: return false;
  }
}

void quantize_row(DType dtype, const float* x, int64_t n, void* out) {
  auto* o = static_cast<uint8_t*>(out);
  switch (dtype) {
    case DType::kF32: std::memcpy(out, x, n * sizeof(float)); return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = quant::f16_from_f32(x[i]);
        std::memcpy(o + 2 * i, &h, 2);
      }
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = quant::bf16_from_f32(x[i]);
        std::memcpy(o + 2 * i, &h, 2);
      }
      return;
    case DType::kQ8_0:
      TANDEM_CHECK(n % quant::kBlock == 0);
      for (int64_t b = 0; b < n / quant::kBlock; ++b) quant::quantize_q8_0(x + b * 32, o + b * quant::kQ8Bytes);
      return;
    case DType::kQ4_0:
      TANDEM_CHECK(n % quant::kBlock == 0);
      for (int64_t b = 0; b < n / quant::kBlock; ++b) quant::quantize_q4_0(x + b * 32, o + b * quant::kQ4Bytes);
      return;
    case DType::kQ4K:
      TANDEM_CHECK(n % quant::kQ4KBlock == 0);
      for (int64_t b = 0; b < n / quant::kQ4KBlock; ++b)
        quant::quantize_q4_k(x + b * quant::kQ4KBlock, o + b * quant::kQ4KBytes);
      return;
    default: TANDEM_CHECK_MSG(false, std::string(dtype_name(dtype)));
  }
}

void dequantize_row(DType dtype, const void* in, int64_t n, float* out) {
  const auto* p = static_cast<const uint8_t*>(in);
  if (dtype == DType::kQ4K) {  // whole super-blocks: elements are not independent of their block's pairs
    TANDEM_CHECK(n % quant::kQ4KBlock == 0);
    for (int64_t b = 0; b < n / quant::kQ4KBlock; ++b)
      quant::dequantize_q4_k(p + b * quant::kQ4KBytes, out + b * quant::kQ4KBlock);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    switch (dtype) {
      case DType::kF32: std::memcpy(&out[i], p + 4 * i, 4); break;
      case DType::kF16: std::memcpy(&h, p + 2 * i, 2); out[i] = quant::f32_from_f16(h); break;
      case DType::kBF16: std::memcpy(&h, p + 2 * i, 2); out[i] = quant::f32_from_bf16(h); break;
      case DType::kQ8_0: out[i] = quant::q8_0_value(p + (i / 32) * quant::kQ8Bytes, i % 32); break;
      case DType::kQ4_0: out[i] = quant::q4_0_value(p + (i / 32) * quant::kQ4Bytes, i % 32); break;
      default: TANDEM_CHECK_MSG(false, std::string(dtype_name(dtype)));
    }
  }
}

Result<LlamaWeights> convert_weights(const LlamaWeights& w, DType dtype) {
  const bool shared = w.classifier.data == w.embedding.data;
  std::vector<const Tensor*> matrices = {&w.embedding};
  for (const auto& l : w.layers)
    for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_down, &l.w_up}) matrices.push_back(t);
  if (!shared) matrices.push_back(&w.classifier);
  // A pipeline stage's shard has no embedding or no classifier: nothing to convert.
  std::erase_if(matrices, [](const Tensor* t) { return t->data == nullptr; });
  size_t total = 0;
  for (const Tensor* t : matrices) {
    if (t->dtype != DType::kF32) return InvalidArgument("convert_weights: the source must be f32");
    if (!storable_as(dtype, t->row_length()))
      return InvalidArgument("a " + t->shape_string() + " matrix cannot be stored as " +
                             std::string(dtype_name(dtype)) + ": rows must be a multiple of " +
                             std::to_string(dtype_block_elems(dtype)));
    Tensor sized = *t;
    sized.dtype = dtype;
    total += (sized.bytes() + 63) / 64 * 64;
  }
  auto* data = new (std::nothrow) uint8_t[total];
  if (data == nullptr) return ResourceExhausted("convert_weights: cannot allocate " + std::to_string(total) + " bytes");
  LlamaWeights out = w;
  auto old_storage = w.storage;  // the norms still point into it
  out.storage = std::shared_ptr<const void>(data, [old_storage](const void* p) {
    delete[] static_cast<const uint8_t*>(p);
  });
  uint8_t* cursor = data;
  auto convert = [&](Tensor& t) {
    if (t.data == nullptr) return;
    Tensor converted = t;
    converted.dtype = dtype;
    converted.data = cursor;
    const int64_t row = t.row_length();
    const size_t row_bytes = converted.bytes() / t.rows();
    for (int64_t r = 0; r < t.rows(); ++r)
      quantize_row(dtype, t.f32() + r * row, row, cursor + r * row_bytes);
    cursor += (converted.bytes() + 63) / 64 * 64;
    t = converted;
  };
  convert(out.embedding);
  for (auto& l : out.layers)
    for (Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_down, &l.w_up}) convert(*t);
  if (shared) {
    out.classifier = out.embedding;
  } else {
    convert(out.classifier);
  }
  return out;
}

}  // namespace tandem
