#include "runtime/tensor.h"

namespace tandem {

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kQ8_0: return "q8_0";
    case DType::kQ4_0: return "q4_0";
    case DType::kQ4K: return "q4_k";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
    case DType::kF32Panels: return "f32_panels";
  }
  return "unknown";
}

int64_t dtype_block_elems(DType dtype) {
  switch (dtype) {
    case DType::kQ8_0:
    case DType::kQ4_0: return 32;
    case DType::kQ4K: return 256;
    default: return 1;
  }
}

int64_t dtype_block_bytes(DType dtype) {
  switch (dtype) {
    case DType::kF32:
    case DType::kF32Panels:
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kF16:
    case DType::kBF16: return 2;
    case DType::kQ8_0: return 2 + 32;      // f16 scale + 32 int8
    case DType::kQ4_0: return 2 + 32 / 2;  // f16 scale + 32 nibbles
    case DType::kQ4K: return 144;          // runtime/quantize_q4k.h
  }
  return 0;
}

Tensor Tensor::view(void* data, DType dtype, std::initializer_list<int64_t> dims) {
  TANDEM_CHECK(dims.size() <= static_cast<size_t>(kMaxRank));
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.rank = static_cast<int>(dims.size());
  int i = 0;
  for (int64_t d : dims) {
    TANDEM_CHECK(d >= 0);
    t.shape[i++] = d;
  }
  return t;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  return n;
}

size_t Tensor::bytes() const {
  const int64_t n = numel();
  TANDEM_CHECK(n % dtype_block_elems(dtype) == 0);
  return static_cast<size_t>(n / dtype_block_elems(dtype) * dtype_block_bytes(dtype));
}

Tensor Tensor::row_slice(int64_t begin, int64_t count) const {
  TANDEM_CHECK(begin >= 0 && count >= 0 && begin + count <= rows());
  TANDEM_CHECK_MSG(dtype != DType::kF32Panels, "a row slice of an f32_panels matrix");
  Tensor t = *this;
  const int64_t row_bytes =
      row_length() / dtype_block_elems(dtype) * dtype_block_bytes(dtype);
  t.data = static_cast<char*>(data) + begin * row_bytes;
  t.rank = 2;
  t.shape = {count, row_length(), 0, 0};
  return t;
}

float* Tensor::f32() const {
  TANDEM_CHECK_MSG(dtype == DType::kF32, dtype_name(dtype));
  return static_cast<float*>(data);
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace tandem
