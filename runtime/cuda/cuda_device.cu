#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/cuda_device.h"

#include <cstring>

namespace tandem {

Status cuda_status(cudaError_t err, const char* call, const char* file, int line) {
  const char* slash = std::strrchr(file, '/');
  std::string m = std::string(call) + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err) +
                  " (" + (slash ? slash + 1 : file) + ":" + std::to_string(line) + ")";
  // No driver or no device: the machine, not the program, is the cause.
  const bool absent = err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver;
  return Status(absent ? StatusCode::kUnavailable : StatusCode::kInternal, std::move(m));
}

bool cuda_built() { return true; }

Result<std::vector<CudaDeviceInfo>> list_cuda_devices() {
  int count = 0;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaGetDeviceCount(&count));
  std::vector<CudaDeviceInfo> devices;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    TANDEM_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, i));
    CudaDeviceInfo info;
    info.ordinal = i;
    info.name = prop.name;
    info.compute_major = prop.major;
    info.compute_minor = prop.minor;
    info.total_memory = prop.totalGlobalMem;
    info.multiprocessors = prop.multiProcessorCount;
    info.integrated = prop.integrated != 0;
    devices.push_back(std::move(info));
  }
  if (devices.empty()) return Unavailable("the CUDA runtime reports no GPU");
  return devices;
}

}  // namespace tandem
