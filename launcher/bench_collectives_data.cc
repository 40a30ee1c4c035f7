#include "launcher/bench_collectives_data.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace tandem::cli {
namespace {

using collectives::ReduceOp;

std::vector<std::string_view> split(std::string_view list) {
  std::vector<std::string_view> out;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

// Exact for the small integers the bench uses; halves are rounded towards
// zero otherwise, which the check never exercises.
uint16_t float_to_half(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int exp = static_cast<int>((x >> 23) & 0xff) - 127 + 15;
  if ((x & 0x7fffffffu) == 0) return static_cast<uint16_t>(sign);
  if (exp <= 0) return static_cast<uint16_t>(sign);            // below the normal range
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);  // inf
  return static_cast<uint16_t>(sign | (static_cast<uint32_t>(exp) << 10) | ((x >> 13) & 0x3ffu));
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
  if (exp == 0) {
    const float sub = static_cast<float>(man) * (1.0f / 16777216.0f);  // 2^-24
    return sign ? -sub : sub;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));
  return std::bit_cast<float>(sign | ((exp - 15 + 127) << 23) | (man << 13));
}

void store(DType t, void* base, size_t i, int v) {
  switch (t) {
    case DType::kF32: static_cast<float*>(base)[i] = static_cast<float>(v); break;
    case DType::kF16: static_cast<uint16_t*>(base)[i] = float_to_half(static_cast<float>(v)); break;
    case DType::kBF16:
      static_cast<uint16_t*>(base)[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(static_cast<float>(v)) >> 16);
      break;
    case DType::kI32: static_cast<int32_t*>(base)[i] = v; break;
    case DType::kI64: static_cast<int64_t*>(base)[i] = v; break;
    default: break;
  }
}

double load(DType t, const void* base, size_t i) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(base)[i];
    case DType::kF16: return half_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::kBF16: return std::bit_cast<float>(uint32_t{static_cast<const uint16_t*>(base)[i]} << 16);
    case DType::kI32: return static_cast<const int32_t*>(base)[i];
    case DType::kI64: return static_cast<double>(static_cast<const int64_t*>(base)[i]);
    default: return 0;
  }
}

int value(int rank, size_t i) { return static_cast<int>((i * 7 + static_cast<size_t>(rank) * 13) % 17) - 8; }

int reduce_all(ReduceOp op, int ranks, size_t i) {
  int acc = value(0, i);
  for (int r = 1; r < ranks; ++r) {
    const int v = value(r, i);
    acc = op == ReduceOp::kSum ? acc + v : op == ReduceOp::kMax ? std::max(acc, v) : std::min(acc, v);
  }
  return acc;
}

}  // namespace

std::string_view bench_op_name(BenchOp op) {
  switch (op) {
    case BenchOp::kAllReduce: return "all_reduce";
    case BenchOp::kAllGather: return "all_gather";
    case BenchOp::kReduceScatter: return "reduce_scatter";
    case BenchOp::kBroadcast: return "broadcast";
    case BenchOp::kSendRecv: return "sendrecv";
  }
  return "?";
}

Result<std::vector<BenchOp>> parse_bench_ops(std::string_view list) {
  std::vector<BenchOp> ops;
  for (std::string_view name : split(list)) {
    bool found = false;
    for (BenchOp op : {BenchOp::kAllReduce, BenchOp::kAllGather, BenchOp::kReduceScatter, BenchOp::kBroadcast,
                       BenchOp::kSendRecv})
      if (name == bench_op_name(op)) ops.push_back(op), found = true;
    if (!found)
      return InvalidArgument("unknown collective '" + std::string(name) +
                             "' (known: all_reduce, all_gather, reduce_scatter, broadcast, sendrecv)");
  }
  if (ops.empty()) return InvalidArgument("--ops names no collective");
  return ops;
}

std::string_view bench_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "float";
    case DType::kF16: return "half";
    case DType::kBF16: return "bfloat16";
    case DType::kI32: return "int32";
    case DType::kI64: return "int64";
    default: return "?";
  }
}

Result<std::vector<DType>> parse_bench_dtypes(std::string_view list) {
  std::vector<DType> out;
  for (std::string_view n : split(list)) {
    if (n == "float" || n == "f32") out.push_back(DType::kF32);
    else if (n == "half" || n == "f16") out.push_back(DType::kF16);
    else if (n == "bfloat16" || n == "bf16") out.push_back(DType::kBF16);
    else if (n == "int32" || n == "i32") out.push_back(DType::kI32);
    else if (n == "int64" || n == "i64") out.push_back(DType::kI64);
    else return InvalidArgument("unknown dtype '" + std::string(n) + "' (known: float, half, bf16, int32, int64)");
  }
  if (out.empty()) return InvalidArgument("--dtype names no type");
  return out;
}

Result<std::vector<ReduceOp>> parse_reduce_ops(std::string_view list) {
  std::vector<ReduceOp> out;
  for (std::string_view n : split(list)) {
    if (n == "sum") out.push_back(ReduceOp::kSum);
    else if (n == "max") out.push_back(ReduceOp::kMax);
    else if (n == "min") out.push_back(ReduceOp::kMin);
    else return InvalidArgument("unknown reduction '" + std::string(n) + "' (known: sum, max, min)");
  }
  if (out.empty()) return InvalidArgument("--redop names no reduction");
  return out;
}

Result<size_t> parse_byte_size(std::string_view text) {
  size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return InvalidArgument("not a size: '" + std::string(text) + "'");
  std::string_view suffix(end, static_cast<size_t>(text.data() + text.size() - end));
  int shift = 0;
  if (suffix == "K" || suffix == "k" || suffix == "KiB") shift = 10;
  else if (suffix == "M" || suffix == "MiB") shift = 20;
  else if (suffix == "G" || suffix == "GiB") shift = 30;
  else if (!suffix.empty() && suffix != "B") return InvalidArgument("unknown size suffix in '" + std::string(text) + "'");
  if (value > (SIZE_MAX >> shift)) return InvalidArgument("size too large: '" + std::string(text) + "'");
  return value << shift;
}

bool reduces(BenchOp op) { return op == BenchOp::kAllReduce || op == BenchOp::kReduceScatter; }

double bus_factor(BenchOp op, int ranks) {
  const double n = ranks;
  switch (op) {
    case BenchOp::kAllReduce: return 2 * (n - 1) / n;
    case BenchOp::kAllGather:
    case BenchOp::kReduceScatter: return (n - 1) / n;
    case BenchOp::kBroadcast:
    case BenchOp::kSendRecv: return 1;
  }
  return 1;
}

BenchLayout layout_for_count(BenchOp op, size_t count, size_t es, int ranks) {
  const size_t n = static_cast<size_t>(ranks), one = count * es;
  BenchLayout l{count, one, one, one};
  if (op == BenchOp::kAllGather) l.recv_bytes = l.bytes = one * n;
  if (op == BenchOp::kReduceScatter) l.send_bytes = l.bytes = one * n;
  return l;
}

BenchLayout layout_for_bytes(BenchOp op, size_t bytes, size_t es, int ranks) {
  const bool per_rank = op == BenchOp::kAllGather || op == BenchOp::kReduceScatter;
  return layout_for_count(op, bytes / es / (per_rank ? static_cast<size_t>(ranks) : 1), es, ranks);
}

void fill_inputs(BenchOp op, const BenchLayout& l, DType dtype, int rank, void* send, void* recv) {
  const size_t es = collectives::dtype_size(dtype);
  if (op == BenchOp::kBroadcast) {
    for (size_t i = 0; i < l.count; ++i) store(dtype, recv, i, value(rank, i));
    return;
  }
  for (size_t i = 0; i < l.send_bytes / es; ++i) store(dtype, send, i, value(rank, i));
  // A recv buffer that already held the answer would hide a collective that
  // wrote nothing.
  if (l.recv_bytes > 0) std::memset(recv, 0x7f, l.recv_bytes);  // recv may be null when empty
}

size_t count_wrong(BenchOp op, const BenchLayout& l, DType dtype, ReduceOp redop, int rank, int ranks, int root,
                   const void* recv) {
  size_t wrong = 0;
  const size_t c = l.count;
  auto expect = [&](size_t i) -> int {
    switch (op) {
      case BenchOp::kAllReduce: return reduce_all(redop, ranks, i);
      case BenchOp::kAllGather: return value(static_cast<int>(i / c), i % c);
      case BenchOp::kReduceScatter: return reduce_all(redop, ranks, static_cast<size_t>(rank) * c + i);
      case BenchOp::kBroadcast: return value(root, i);
      case BenchOp::kSendRecv: return value((rank + ranks - 1) % ranks, i);
    }
    return 0;
  };
  const size_t n = op == BenchOp::kAllGather ? c * static_cast<size_t>(ranks) : c;
  for (size_t i = 0; i < n; ++i) wrong += load(dtype, recv, i) != static_cast<double>(expect(i));
  return wrong;
}

}  // namespace tandem::cli
