// TANDEM_CUDA_RETURN_IF_ERROR(call): a failed CUDA runtime call becomes a
// Status naming the call, CUDA's error and file:line. Only for .cu files.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "runtime/status.h"

namespace tandem {

Status cuda_status(cudaError_t err, const char* call, const char* file, int line);

}  // namespace tandem

#define TANDEM_CUDA_RETURN_IF_ERROR(call)                                        \
  do {                                                                           \
    cudaError_t tandem_cuda_err_ = (call);                                       \
    if (tandem_cuda_err_ != cudaSuccess)                                         \
      return ::tandem::cuda_status(tandem_cuda_err_, #call, __FILE__, __LINE__); \
  } while (0)
