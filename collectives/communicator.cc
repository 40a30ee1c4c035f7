#include "collectives/communicator.h"

namespace tandem::collectives {

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMin: return "min";
  }
  return "unknown";
}

bool reducible(DType dtype) {
  switch (dtype) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kI32:
    case DType::kI64: return true;
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4K:
    case DType::kF32Panels: return false;  // weight storage, not data to reduce
  }
  return false;
}

// 0 for the block-quantised types: they have no per-element size, and callers
// reject them through reducible() before sizing anything.
size_t dtype_size(DType dtype) {
  return reducible(dtype) ? static_cast<size_t>(dtype_block_bytes(dtype)) : 0;
}

}  // namespace tandem::collectives
