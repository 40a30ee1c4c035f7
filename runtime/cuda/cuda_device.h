// The CUDA device layer the CUDA backend builds on: which GPUs there are, and
// the checked-call macro every CUDA call goes through. Compiled from
// cuda_device.cu when the toolkit is found; otherwise cuda_device_absent.cc
// answers that this build has no CUDA, so callers need no #ifdefs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace tandem {

struct CudaDeviceInfo {
  int ordinal = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;  // 9.0 H100, 12.1 GB10
  uint64_t total_memory = 0;
  int multiprocessors = 0;
  bool integrated = false;  // shares memory with the CPU (GB10's unified memory)
};

// Whether this build compiled the CUDA code.
bool cuda_built();
// FailedPrecondition in a build without CUDA; Unavailable (with the driver's
// reason) when there is no usable GPU.
Result<std::vector<CudaDeviceInfo>> list_cuda_devices();

}  // namespace tandem
