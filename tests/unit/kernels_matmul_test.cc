// The matmuls, row-major (matmul_rows) and over 32-row panels
// (matmul_panels, runtime/panel_layout.h), for every ISA this CPU and build
// support, against a float64 reference on the row-major weights: tile and
// token-group edges, row ranges (threads own parts of the rows), chunked long
// rows; tolerances and buffers as kernel_test_support.h states them.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu/kernels_internal.h"
#include "runtime/panel_layout.h"
#include "tests/unit/kernel_test_support.h"

namespace tandem::cpu {
namespace {

using namespace kernel_test;  // the shared fixture, buffers and tolerances

class MatmulKernelTest : public KernelTest {};

struct MatmulCase {
  int64_t n_tokens, n_in, n_out, row_begin, row_end;
};

// matmul_rows on row-major w, or with `panels` matmul_panels on the same w
// stored by store_panel_row (the reference below reads the row-major w).
void check_matmul(const MatmulCase& c, std::mt19937& rng, bool panels = false) {
  SCOPED_TRACE(::testing::Message() << (panels ? "panels" : "rows") << " tokens " << c.n_tokens << " n_in "
                                    << c.n_in << " n_out " << c.n_out << " rows [" << c.row_begin << ", "
                                    << c.row_end << ")");
  Buffer x = random_buffer(c.n_tokens * c.n_in, rng), w = random_buffer(c.n_out * c.n_in, rng);
  Buffer y(c.n_tokens * c.n_out, /*guarded=*/true);
  const float sentinel = std::numeric_limits<float>::quiet_NaN();
  for (int64_t i = 0; i < y.size(); ++i) y[i] = sentinel;
  if (panels) {
    Buffer stored(c.n_out * c.n_in);
    for (int64_t r = 0; r < c.n_out; ++r) store_panel_row(stored.data(), c.n_out, c.n_in, r, w.data() + r * c.n_in);
    matmul_panels(y.data(), x.data(), stored.data(), c.n_tokens, c.n_in, c.n_out, c.row_begin, c.row_end);
  } else {
    matmul_rows(y.data(), x.data(), w.data(), c.n_tokens, c.n_in, c.n_out, c.row_begin, c.row_end);
  }
  for (int64_t t = 0; t < c.n_tokens; ++t) {
    for (int64_t r = 0; r < c.n_out; ++r) {
      const float got = y[t * c.n_out + r];
      if (r < c.row_begin || r >= c.row_end) {
        EXPECT_TRUE(std::isnan(got)) << "row " << r << " outside the range was written";
        continue;
      }
      double ref = 0.0, scale = 0.0;
      for (int64_t i = 0; i < c.n_in; ++i) {
        ref += double{x[t * c.n_in + i]} * w[r * c.n_in + i];
        scale += std::fabs(double{x[t * c.n_in + i]} * w[r * c.n_in + i]);
      }
      ASSERT_FALSE(std::isnan(got)) << "token " << t << " row " << r << " not written";
      expect_close(got, ref, kSumTol * scale, "matmul token*n_out+row", t * c.n_out + r);
    }
  }
  EXPECT_TRUE(y.guards_intact());
}

TEST_P(MatmulKernelTest, MatmulRowsMatchesFloat64) {
  for (int64_t n_tokens : {1, 2, 3, 4, 5, 9}) {
    for (int64_t n_in : {1, 7, 8, 9, 33, 257}) {
      for (int64_t n_out : {1, 3, 4, 5, 9, 17}) {
        check_matmul({n_tokens, n_in, n_out, 0, n_out}, rng_);
      }
    }
  }
}

TEST_P(MatmulKernelTest, MatmulRowsLeavesRowsOutsideTheRangeUntouched) {
  for (int64_t n_tokens : {1, 2, 3, 5}) {
    check_matmul({n_tokens, 33, 11, 1, 10}, rng_);
    check_matmul({n_tokens, 9, 11, 3, 4}, rng_);
    check_matmul({n_tokens, 9, 11, 6, 11}, rng_);
    check_matmul({n_tokens, 9, 11, 5, 5}, rng_);  // empty range writes nothing
  }
}

TEST_P(MatmulKernelTest, MatmulRowsCoversEveryTileEdge) {
  // kAvx512's tiles are 4 rows x 6 tokens of 16 lanes: token counts that fill
  // them, leave 1..5 over, or span several groups; n_in just under, at and
  // over 16 lanes and a long row with a tail; row ranges starting and ending
  // off a multiple of 4, so leftover rows meet the range edges.
  struct Range {
    int64_t begin, end;
  };
  const Range ranges[] = {{0, 13}, {1, 12}, {3, 10}, {5, 6}, {2, 7}, {4, 4}};
  for (int64_t n_tokens : {2, 3, 4, 5, 6, 7, 16, 17, 64}) {
    for (int64_t n_in : {15, 16, 17, 100, 771}) {
      for (const Range& range : ranges) check_matmul({n_tokens, n_in, 13, range.begin, range.end}, rng_);
    }
  }
  // kAvx512 goes along rows longer than 1024 in chunks, the last with a
  // tail, adding each chunk's sums to y; it sizes token blocks by the chunk,
  // so 80 tokens of 4099 span two of them.
  for (int64_t n_tokens : {2, 7, 17}) check_matmul({n_tokens, 1500, 9, 1, 8}, rng_);
  check_matmul({80, 4099, 6, 1, 6}, rng_);
}

TEST_P(MatmulKernelTest, MatmulRowsSpansTokenBlocksAndLongRows) {
  // More tokens than one cache block holds, rows longer than a 4-wide unroll.
  const int64_t n_in = 4099;
  check_matmul({matmul_token_block(n_in) + 1, n_in, 5, 0, 5}, rng_);
  check_matmul({1, n_in, 7, 0, 7}, rng_);
  check_matmul({3, 1023, 6, 1, 6}, rng_);
}

TEST_P(MatmulKernelTest, MatmulRowsWithEmptyRowsWritesZero) {
  Buffer y(6, /*guarded=*/true);
  for (int64_t i = 0; i < 6; ++i) y[i] = 7.0f;
  float unused = 0.0f;
  matmul_rows(y.data(), &unused, &unused, 2, /*n_in=*/0, 3, 0, 3);
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(y[i], 0.0f);
  EXPECT_TRUE(y.guards_intact());
}

// The layout alone (runtime/panel_layout.h): no kernel, so once, not per ISA.
TEST(PanelLayout, PanelRowsRoundTripAndTailRowsStayWhereRowMajorPutsThem) {
  for (int64_t n_out : {1, 31, 32, 33, 70}) {
    const int64_t n_in = 5;
    std::vector<float> stored(static_cast<size_t>(n_out * n_in), 0.0f), row(n_in), back(n_in);
    for (int64_t r = 0; r < n_out; ++r) {
      for (int64_t k = 0; k < n_in; ++k) row[k] = static_cast<float>(r * 100 + k);
      store_panel_row(stored.data(), n_out, n_in, r, row.data());
    }
    for (int64_t r = 0; r < n_out; ++r) {
      load_panel_row(back.data(), stored.data(), n_out, n_in, r);
      for (int64_t k = 0; k < n_in; ++k) ASSERT_EQ(back[k], static_cast<float>(r * 100 + k)) << r << "," << k;
      // A full block is k-major (32 rows side by side); the rest row-major.
      const int64_t want = r < n_out / 32 * 32 ? r / 32 * 32 * n_in + r % 32 : r * n_in;
      EXPECT_EQ(panel_offset(n_out, n_in, r, 0), want) << "row " << r;
    }
  }
}

TEST_P(MatmulKernelTest, MatmulPanelsMatchesFloat64) {
  // Tokens filling 10-token groups, fewer, or spread over several as
  // evenly as they go (11 = 6 + 5, 20 = 10 + 10, 23 = 8 + 8 + 7); rows
  // making whole 32-row blocks, blocks and a row-major tail, or only a tail;
  // n_in short, 16-lane-odd and past the 1024-column chunk.
  for (int64_t n_tokens : {1, 2, 5, 9, 10, 11, 13, 20, 23}) {
    for (int64_t n_in : {1, 7, 33, 771}) {
      for (int64_t n_out : {5, 32, 45, 96}) check_matmul({n_tokens, n_in, n_out, 0, n_out}, rng_, /*panels=*/true);
    }
  }
  for (int64_t n_tokens : {1, 3, 14}) check_matmul({n_tokens, 2500, 40, 0, 40}, rng_, /*panels=*/true);
}

TEST_P(MatmulKernelTest, MatmulPanelsLeavesRowsOutsideTheRangeUntouched) {
  // Ranges cutting blocks anywhere (threads own parts of a block), within
  // one block, across the blocks' end into the tail, only the tail, empty.
  struct Range {
    int64_t begin, end;
  };
  const Range ranges[] = {{0, 70}, {1, 31}, {5, 6}, {31, 33}, {13, 67}, {40, 64}, {64, 70}, {66, 69}, {20, 20}};
  for (int64_t n_tokens : {1, 4, 13}) {
    for (const Range& range : ranges) check_matmul({n_tokens, 19, 70, range.begin, range.end}, rng_, true);
    check_matmul({n_tokens, 1100, 70, 3, 50}, rng_, true);  // chunks add into y: only the range's rows
  }
}

TEST_P(MatmulKernelTest, MatmulPanelsWithEmptyRowsWritesZero) {
  Buffer y(2 * 40, /*guarded=*/true);
  for (int64_t i = 0; i < y.size(); ++i) y[i] = 7.0f;
  float unused = 0.0f;
  matmul_panels(y.data(), &unused, &unused, 2, /*n_in=*/0, 40, 0, 40);
  for (int64_t i = 0; i < y.size(); ++i) EXPECT_EQ(y[i], 0.0f) << i;
  EXPECT_TRUE(y.guards_intact());
}

INSTANTIATE_TEST_SUITE_P(AllIsas, MatmulKernelTest,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon),
                         [](const ::testing::TestParamInfo<Isa>& param_info) {
                           return std::string(isa_name(param_info.param));
                         });

TEST(KernelDispatchDeathTest, MatmulRowsRangePastTheEndIsAProgrammerBug) {
  float y[4] = {}, x[2] = {}, w[8] = {};
  EXPECT_DEATH(matmul_rows(y, x, w, 1, 2, 4, 0, 5), "internal check failed");
}

}  // namespace
}  // namespace tandem::cpu
