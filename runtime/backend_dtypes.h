// The weight dtypes each backend kind computes with (matmul and embed; norms
// are always f32). Loaders keep a file's dtype when its backend is listed
// here and convert it otherwise (runtime/model_assembly.h); `tandem plan`
// counts bytes in the same dtypes without making a backend.
#pragma once

#include <vector>

#include "runtime/backend.h"
#include "runtime/tensor.h"

namespace tandem {

std::vector<DType> backend_weight_dtypes(BackendKind kind);

}  // namespace tandem
