// What `tandem bench collectives` measures and checks, apart from the
// command line: the collectives by name, each one's buffer layout and
// nccl-tests bus-bandwidth factor, and the rank-dependent test data with its
// expected results.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collectives/communicator.h"
#include "runtime/status.h"

namespace tandem::cli {

enum class BenchOp { kAllReduce, kAllGather, kReduceScatter, kBroadcast, kSendRecv };

std::string_view bench_op_name(BenchOp op);
Result<std::vector<BenchOp>> parse_bench_ops(std::string_view list);
Result<std::vector<DType>> parse_bench_dtypes(std::string_view list);  // float,half,bf16,int32,int64
Result<std::vector<collectives::ReduceOp>> parse_reduce_ops(std::string_view list);
// nccl-tests' names: float, half, bfloat16, int32, int64.
std::string_view bench_dtype_name(DType dtype);
// "64M", "4K", "4097", "1G": bytes (binary suffixes).
Result<size_t> parse_byte_size(std::string_view text);

bool reduces(BenchOp op);
// busbw = algbw x this (nccl-tests, DESIGN.md): the share of the data each
// rank must move over its link, so figures compare across group sizes.
double bus_factor(BenchOp op, int ranks);

// Buffers of one run. `count` is the collective's count argument (per rank
// for all_gather and reduce_scatter); `bytes` is the size column: the larger
// of the two buffers, as nccl-tests reports it.
struct BenchLayout {
  size_t count = 0;
  size_t send_bytes = 0;
  size_t recv_bytes = 0;
  size_t bytes = 0;
};
BenchLayout layout_for_count(BenchOp op, size_t count, size_t elem_bytes, int ranks);
BenchLayout layout_for_bytes(BenchOp op, size_t bytes, size_t elem_bytes, int ranks);

// The data: rank r's element i is a small integer (-8..8), so every result
// of a group of up to 32 ranks is an integer within +-256, which every dtype
// (bf16 included) holds exactly: results compare exactly.
// Fills this rank's inputs (for broadcast: the buffer, which only the root's
// content survives).
void fill_inputs(BenchOp op, const BenchLayout& l, DType dtype, int rank, void* send, void* recv);
// Elements of recv that differ from what the collective must produce.
size_t count_wrong(BenchOp op, const BenchLayout& l, DType dtype, collectives::ReduceOp redop, int rank,
                   int ranks, int root, const void* recv);

}  // namespace tandem::cli
