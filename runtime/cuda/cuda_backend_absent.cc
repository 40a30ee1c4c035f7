// The CUDA backend in a build without the CUDA toolkit: a clear refusal.
#include "runtime/cuda/cuda_backend.h"

namespace tandem {
namespace {

Status not_built() {
  return FailedPrecondition(
      "the cuda backend is not in this build of tandem (configure with -DTANDEM_CUDA=ON and a CUDA toolkit)");
}

}  // namespace

Result<std::unique_ptr<Backend>> make_cuda_backend(int) { return not_built(); }
Result<double> cuda_copy_bandwidth(Backend&, size_t, int) { return not_built(); }
Result<double> cuda_read_bandwidth(Backend&, size_t, int) { return not_built(); }
Result<double> cuda_gemm_flops(Backend&, DType, int64_t, int64_t, int64_t, int) { return not_built(); }

}  // namespace tandem
