// The CUDA device layer of a build without the CUDA toolkit.
#include "runtime/cuda/cuda_device.h"

namespace tandem {

bool cuda_built() { return false; }

Result<std::vector<CudaDeviceInfo>> list_cuda_devices() {
  return FailedPrecondition(
      "this tandem was built without CUDA (configure with -DTANDEM_CUDA=ON and a CUDA toolkit)");
}

}  // namespace tandem
