// The bench's denominators, measured on the backend's stream with CUDA events
// after a warm-up: device-to-device copy bandwidth and cuBLAS GEMM rate.
#include <algorithm>
#include <vector>

#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/cuda_backend_impl.h"

namespace tandem {
namespace {

Result<CudaBackend*> as_cuda(Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (cuda == nullptr) return InvalidArgument("not a cuda backend: " + backend.name());
  return cuda;
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// Runs `op` once to warm up, then `reps` times each between two events;
// returns the median seconds.
template <typename Op>
Result<double> time_median(CudaBackend& cuda, int reps, Op op) {
  cudaEvent_t start, stop;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaEventCreate(&start));
  TANDEM_CUDA_RETURN_IF_ERROR(cudaEventCreate(&stop));
  std::vector<double> seconds;
  Status status = op();
  for (int r = 0; r < reps && status.ok(); ++r) {
    status = cuda_status_if(cudaEventRecord(start, cuda.stream()), "cudaEventRecord", __FILE__, __LINE__);
    if (status.ok()) status = op();
    if (status.ok()) status = cuda_status_if(cudaEventRecord(stop, cuda.stream()), "cudaEventRecord", __FILE__, __LINE__);
    if (status.ok()) status = cuda.wait_idle();
    float ms = 0;
    if (status.ok()) status = cuda_status_if(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime", __FILE__, __LINE__);
    seconds.push_back(ms / 1e3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  TANDEM_RETURN_IF_ERROR(status);
  return median(seconds);
}

}  // namespace

Result<double> cuda_copy_bandwidth(Backend& backend, size_t bytes, int reps) {
  TANDEM_ASSIGN_OR_RETURN(CudaBackend * cuda, as_cuda(backend));
  TANDEM_ASSIGN_OR_RETURN(Buffer src, backend.allocate(bytes));
  TANDEM_ASSIGN_OR_RETURN(Buffer dst, backend.allocate(bytes));
  TANDEM_ASSIGN_OR_RETURN(double s, time_median(*cuda, reps, [&]() -> Status {
    TANDEM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, cuda->stream()));
    return Status::Ok();
  }));
  return 2.0 * static_cast<double>(bytes) / s;
}

Result<double> cuda_read_bandwidth(Backend& backend, size_t bytes, int reps) {
  TANDEM_ASSIGN_OR_RETURN(CudaBackend * cuda, as_cuda(backend));
  int device = 0, sms = 0;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  TANDEM_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int blocks = sms * 8;
  bytes = bytes / 16 * 16;
  TANDEM_ASSIGN_OR_RETURN(Buffer data, backend.allocate(bytes));
  TANDEM_ASSIGN_OR_RETURN(Buffer out, backend.allocate(blocks * sizeof(uint32_t)));
  TANDEM_ASSIGN_OR_RETURN(double s, time_median(*cuda, reps, [&]() -> Status {
    TANDEM_CUDA_RETURN_IF_ERROR(
        cuda::read_probe(cuda->stream(), data.data(), bytes, static_cast<uint32_t*>(out.data()), blocks));
    return Status::Ok();
  }));
  return static_cast<double>(bytes) / s;
}

Result<double> cuda_gemm_flops(Backend& backend, DType dtype, int64_t m, int64_t n, int64_t k, int reps) {
  TANDEM_ASSIGN_OR_RETURN(CudaBackend * cuda, as_cuda(backend));
  if (dtype != DType::kBF16 && dtype != DType::kF32) return InvalidArgument("gemm rate: bf16 or f32 inputs");
  const cudaDataType type = dtype == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
  const size_t elem = dtype == DType::kBF16 ? 2 : 4;
  TANDEM_ASSIGN_OR_RETURN(Buffer a, backend.allocate(m * k * elem));
  TANDEM_ASSIGN_OR_RETURN(Buffer b, backend.allocate(k * n * elem));
  TANDEM_ASSIGN_OR_RETURN(Buffer c, backend.allocate(m * n * 4));
  const float one = 1.0f, zero = 0.0f;
  // The same call as the model's prefill: weights [n, k] transposed, f32 out.
  TANDEM_ASSIGN_OR_RETURN(double s, time_median(*cuda, reps, [&]() -> Status {
    TANDEM_CUBLAS_RETURN_IF_ERROR(cublasGemmEx(cuda->cublas(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n),
                                               static_cast<int>(m), static_cast<int>(k), &one, b.data(), type,
                                               static_cast<int>(k), a.data(), type, static_cast<int>(k), &zero,
                                               c.data(), CUDA_R_32F, static_cast<int>(n), CUBLAS_COMPUTE_32F,
                                               CUBLAS_GEMM_DEFAULT));
    return Status::Ok();
  }));
  return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) / s;
}

}  // namespace tandem
