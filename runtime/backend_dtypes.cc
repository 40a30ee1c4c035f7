#include "runtime/backend_dtypes.h"

namespace tandem {

std::vector<DType> backend_weight_dtypes(BackendKind kind) {
  switch (kind) {
    case BackendKind::kCpu:
      return {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4K};
    case BackendKind::kCuda: return {DType::kF32, DType::kBF16, DType::kQ8_0, DType::kQ4_0};
  }
  return {DType::kF32};
}

}  // namespace tandem
