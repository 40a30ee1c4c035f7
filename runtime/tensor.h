// Tensors are plain views: a dtype, a shape and a pointer into memory owned by
// someone else (a Buffer from a backend, or a mapped model file). A view never
// frees anything, so it can be copied freely and sliced without cost. Whether
// `data` is host or device memory depends on the backend it came from; only
// that backend's kernels may dereference it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/status.h"

namespace tandem {

// f32 activations; f16/bf16, GGUF's Q8_0/Q4_0 (blocks of 32) and Q4_K
// (super-blocks of 256, runtime/quantize_q4k.h) store weights; i32/i64 carry
// token ids and counters (and are reduced by the collectives). kF32Panels is
// an f32 matrix stored for the CPU's matmul (runtime/panel_layout.h): the
// same values and bytes as kF32, its rows in another order, so only code that
// knows the layout may read it.
enum class DType : uint8_t { kF32, kF16, kBF16, kQ8_0, kQ4_0, kI32, kI64, kQ4K, kF32Panels };

std::string_view dtype_name(DType dtype);
// Elements per storage block (1 for plain types, 32 for Q8_0/Q4_0, 256 for
// Q4_K) and the bytes of one block; bytes for n elements = n / block_elems *
// block_bytes.
int64_t dtype_block_elems(DType dtype);
int64_t dtype_block_bytes(DType dtype);

struct Tensor {
  static constexpr int kMaxRank = 4;

  void* data = nullptr;
  DType dtype = DType::kF32;
  int rank = 0;
  std::array<int64_t, kMaxRank> shape{};

  static Tensor view(void* data, DType dtype, std::initializer_list<int64_t> dims);

  int64_t dim(int i) const { return shape[i]; }
  int64_t numel() const;
  // Storage size; a programmer bug if numel is not a multiple of the block.
  size_t bytes() const;
  // Number of rows (the product of all but the last dimension) and row length.
  int64_t rows() const { return rank == 0 ? 1 : numel() / shape[rank - 1]; }
  int64_t row_length() const { return rank == 0 ? 1 : shape[rank - 1]; }
  // Rows [begin, begin + count) of this tensor seen as a 2-D [rows, row_length].
  // Not of kF32Panels, whose rows are not contiguous (a programmer bug).
  Tensor row_slice(int64_t begin, int64_t count) const;

  float* f32() const;  // checks dtype == kF32
  std::string shape_string() const;  // "[8, 64]"
};

}  // namespace tandem
