// DType::kF32Panels: an f32 matrix [n_out, n_in] laid out for the CPU's
// batched matmul (runtime/cpu/kernels.h, matmul_panels).
//
// Rows go in blocks of kPanelRows. A full block is stored k-major: for each
// input column k, its 32 rows' weights side by side (32 floats, 128 bytes),
// so the matmul multiplies one broadcast activation by two 16-float vectors
// of weights, with no horizontal sums, and reads each block as one
// sequential stream. Rows past the last full block (n_out % kPanelRows of
// them) stay row-major after the blocks, which puts every one of them where
// row-major would: element (r, k) of such a row is at r * n_in + k. The
// matrix takes exactly the bytes of its kF32 form. Why (the measured rates
// of both layouts): docs/benchmarks.md, "Weights in 32-row panels".
#pragma once

#include <cstdint>

namespace tandem {

inline constexpr int64_t kPanelRows = 32;

// Rows stored in full k-major blocks: the first n_out - n_out % kPanelRows.
inline int64_t panel_rows(int64_t n_out) { return n_out / kPanelRows * kPanelRows; }

// Where element (r, k) lives, in floats from the matrix's start.
inline int64_t panel_offset(int64_t n_out, int64_t n_in, int64_t r, int64_t k) {
  if (r >= panel_rows(n_out)) return r * n_in + k;
  return r / kPanelRows * kPanelRows * n_in + k * kPanelRows + r % kPanelRows;
}

// Writes row r (n_in floats) into / reads it out of a matrix in this layout.
inline void store_panel_row(float* panels, int64_t n_out, int64_t n_in, int64_t r, const float* row) {
  float* first = panels + panel_offset(n_out, n_in, r, 0);
  const int64_t stride = r >= panel_rows(n_out) ? 1 : kPanelRows;
  for (int64_t k = 0; k < n_in; ++k) first[k * stride] = row[k];
}

inline void load_panel_row(float* row, const float* panels, int64_t n_out, int64_t n_in, int64_t r) {
  const float* first = panels + panel_offset(n_out, n_in, r, 0);
  const int64_t stride = r >= panel_rows(n_out) ? 1 : kPanelRows;
  for (int64_t k = 0; k < n_in; ++k) row[k] = first[k * stride];
}

}  // namespace tandem
