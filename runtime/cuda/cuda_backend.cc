// The CUDA backend: device, stream and memory; weight upload; the host waits;
// the elementwise kernels' checks. Matrix products and attention:
// cuda_matmul.cc.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/cuda_backend_impl.h"
#include "runtime/cuda/q_layout.h"

namespace tandem {
namespace {

constexpr size_t kStagingBytes = size_t{64} << 20;
constexpr size_t kCublasWorkspace = size_t{32} << 20;
constexpr size_t kAlignment = 256;

void check_same_shape(const Tensor& a, const Tensor& b) {
  TANDEM_CHECK_MSG(a.rows() == b.rows() && a.row_length() == b.row_length(),
                   a.shape_string() + " vs " + b.shape_string());
}

}  // namespace

Status cublas_status(cublasStatus_t status, const char* call, const char* file, int line) {
  const char* slash = std::strrchr(file, '/');
  return Internal(std::string(call) + ": " + cublasGetStatusName(status) + ": " + cublasGetStatusString(status) +
                  " (" + (slash ? slash + 1 : file) + ":" + std::to_string(line) + ")");
}

Result<std::unique_ptr<Backend>> make_cuda_backend(int device) { return CudaBackend::create(device); }

Result<std::unique_ptr<Backend>> CudaBackend::create(int device) {
  auto listed = list_cuda_devices();
  if (!listed.ok())
    return Status(listed.status().code(), "cuda backend: no usable GPU: " + listed.status().message());
  const std::vector<CudaDeviceInfo>& devices = *listed;
  if (device < 0 || device >= static_cast<int>(devices.size()))
    return InvalidArgument("cuda device " + std::to_string(device) + " does not exist (" +
                           std::to_string(devices.size()) + " GPU(s) found)");
  std::unique_ptr<CudaBackend> backend(new CudaBackend());
  backend->info_ = devices[device];
  TANDEM_RETURN_IF_ERROR(backend->init(device));
  return std::unique_ptr<Backend>(std::move(backend));
}

Status CudaBackend::init(int device) {
  TANDEM_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  TANDEM_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  TANDEM_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&idle_, cudaEventDisableTiming));
  // The pool keeps what is freed instead of returning it to the driver:
  // re-planning a model reuses memory without new driver allocations.
  cudaMemPool_t pool;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t keep = UINT64_MAX;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  int pageable = 0;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&pageable, cudaDevAttrPageableMemoryAccess, device));
  weights_in_place_ = info_.integrated && pageable != 0;
  for (int i = 0; i < 2; ++i) {
    TANDEM_CUDA_RETURN_IF_ERROR(cudaMallocHost(&pinned_[i], kStagingBytes));
    TANDEM_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&pinned_free_[i], cudaEventDisableTiming));
  }
  TANDEM_CUBLAS_RETURN_IF_ERROR(cublasCreate(&cublas_));
  TANDEM_CUBLAS_RETURN_IF_ERROR(cublasSetStream(cublas_, stream_));
  // A workspace of our own: cuBLAS then allocates nothing per call.
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMalloc(&cublas_workspace_, kCublasWorkspace));
  TANDEM_CUBLAS_RETURN_IF_ERROR(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspace));
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMalloc(&step_, sizeof(cuda::StepParams)));
  const char* graphs = std::getenv("TANDEM_CUDA_GRAPHS");
  graphs_ = graphs == nullptr || std::string(graphs) != "0";
  if (const char* variant = std::getenv("TANDEM_GEMV_VARIANT")) {
    // Every weight type has at least this many shapes; a typo must not
    // surface later as a launch's "invalid argument".
    int shapes = INT_MAX;
    for (auto t : {cuda::WeightType::kF32, cuda::WeightType::kBF16, cuda::WeightType::kQ8_0, cuda::WeightType::kQ4_0})
      shapes = std::min(shapes, cuda::gemv_variant_count(t));
    char* end = nullptr;
    const long v = std::strtol(variant, &end, 10);
    if (*variant == '\0' || *end != '\0' || v < -1 || v >= shapes)
      return InvalidArgument("TANDEM_GEMV_VARIANT='" + std::string(variant) + "' is not a kernel shape: -1 (default) to " +
                             std::to_string(shapes - 1));
    gemv_variant_ = static_cast<int>(v);
  }
  return Status::Ok();
}

CudaBackend::~CudaBackend() {
  // Errors here have nowhere to go; the process is releasing the GPU anyway.
  if (stream_) (void)wait_idle();
  imported_.clear();
  for (auto& [key, graph] : step_graphs_)
    if (graph.exec) cudaGraphExecDestroy(graph.exec);
  if (step_) cudaFree(step_);
  for (void* p : scratch_) if (p) cudaFree(p);
  if (cublas_) cublasDestroy(cublas_);
  if (cublas_workspace_) cudaFree(cublas_workspace_);
  for (int i = 0; i < 2; ++i) {
    if (pinned_[i]) cudaFreeHost(pinned_[i]);
    if (pinned_free_[i]) cudaEventDestroy(pinned_free_[i]);
  }
  if (idle_) cudaEventDestroy(idle_);
  if (stream_) {
    cudaStreamSynchronize(stream_);  // the pool's frees above were enqueued on it
    cudaStreamDestroy(stream_);
  }
}

std::string CudaBackend::name() const {
  return "cuda (" + info_.name + ", sm_" + std::to_string(info_.compute_major) +
         std::to_string(info_.compute_minor) + ", device " + std::to_string(info_.ordinal) +
         (weights_in_place_ ? ", weights in unified memory" : "") + ")";
}

Status CudaBackend::wait_idle() {
  ++host_waits_;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaEventRecord(idle_, stream_));
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    const cudaError_t err = cudaEventQuery(idle_);
    if (err == cudaSuccess) break;
    if (err != cudaErrorNotReady) return cuda_status(err, "cudaEventQuery(idle_)", __FILE__, __LINE__);
    // A communicator's exchange on our stream may wait for a peer that is
    // gone: its check names the peer (and ends the exchange) by its deadline.
    TANDEM_RETURN_IF_ERROR(run_wait_check(false));
    if (std::chrono::steady_clock::now() > deadline)
      return DeadlineExceeded("cuda backend: the GPU did not finish its queued work within " +
                              std::to_string(timeout_.count()) + " ms");
    std::this_thread::yield();
  }
  // Finished is not succeeded: an exchange may have failed asynchronously.
  TANDEM_RETURN_IF_ERROR(run_wait_check(true));
  return error_;
}

Status CudaBackend::synchronize() { return wait_idle(); }

Result<Buffer> CudaBackend::allocate(size_t bytes) {
  const size_t rounded = (std::max<size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  void* p = nullptr;
  const cudaError_t err = cudaMallocAsync(&p, rounded, stream_);
  if (err == cudaErrorMemoryAllocation)
    return ResourceExhausted("cuda backend: cannot allocate " + std::to_string(bytes) + " bytes on " + info_.name);
  TANDEM_CUDA_RETURN_IF_ERROR(err);
  Buffer buffer(this, p, bytes);
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p, 0, rounded, stream_));
  return buffer;
}

void CudaBackend::release(void* data, size_t) { TANDEM_CUDA_RECORD(cudaFreeAsync(data, stream_)); }

Result<void*> CudaBackend::scratch(Slot slot, size_t bytes) {
  if (scratch_bytes_[slot] >= bytes) return scratch_[slot];
  // Grows once to the largest need (the first prefill); never per step after that.
  TANDEM_RETURN_IF_ERROR(wait_idle());
  if (scratch_[slot]) TANDEM_CUDA_RETURN_IF_ERROR(cudaFree(scratch_[slot]));
  scratch_[slot] = nullptr;
  scratch_bytes_[slot] = 0;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMalloc(&scratch_[slot], bytes));
  scratch_bytes_[slot] = bytes;
  return scratch_[slot];
}

Status CudaBackend::upload(void* device_dst, const void* host_src, size_t bytes) {
  // Two pinned buffers in turn: the host fills one while the GPU copies the other.
  for (size_t done = 0, i = 0; done < bytes; done += kStagingBytes, i ^= 1) {
    const size_t n = std::min(kStagingBytes, bytes - done);
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    cudaError_t err;
    while ((err = cudaEventQuery(pinned_free_[i])) == cudaErrorNotReady) {
      if (std::chrono::steady_clock::now() > deadline) return DeadlineExceeded("cuda backend: weight upload stalled");
      std::this_thread::yield();
    }
    TANDEM_CUDA_RETURN_IF_ERROR(err);
    std::memcpy(pinned_[i], static_cast<const char*>(host_src) + done, n);
    TANDEM_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(static_cast<char*>(device_dst) + done, pinned_[i], n, cudaMemcpyHostToDevice, stream_));
    TANDEM_CUDA_RETURN_IF_ERROR(cudaEventRecord(pinned_free_[i], stream_));
  }
  return wait_idle();
}

Result<Tensor> CudaBackend::import_weights(const Tensor& host) {
  if (host.dtype != DType::kF32 && host.dtype != DType::kBF16 && host.dtype != DType::kQ8_0 &&
      host.dtype != DType::kQ4_0)
    return InvalidArgument("cuda backend computes with f32, bf16, q8_0 or q4_0 weights, got " +
                           std::string(dtype_name(host.dtype)));
  cudaPointerAttributes attr{};
  TANDEM_CUDA_RETURN_IF_ERROR(cudaPointerGetAttributes(&attr, host.data));
  if ((attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged) && attr.device == info_.ordinal)
    return host;  // already ours (fill_synthetic)
  const bool quantized = host.dtype == DType::kQ8_0 || host.dtype == DType::kQ4_0;
  // Quantized rows are rearranged (q_layout.h), so they are copied even where
  // the GPU could read the host's memory in place.
  if (weights_in_place_ && !quantized) return host;
  TANDEM_ASSIGN_OR_RETURN(Buffer buffer, allocate(host.bytes()));
  TANDEM_RETURN_IF_ERROR(upload(buffer.data(), host.data, host.bytes()));
  if (quantized) {
    TANDEM_CUDA_RETURN_IF_ERROR(
        cuda::split_quant_rows(stream_, buffer.data(), weight_type(host.dtype), host.rows(), host.row_length()));
    TANDEM_RETURN_IF_ERROR(wait_idle());
  }
  Tensor t = host;
  t.data = buffer.data();
  imported_.push_back(std::move(buffer));
  return t;
}

Status CudaBackend::copy_to_host(void* dst, const Tensor& src, size_t bytes) {
  TANDEM_CHECK(bytes <= src.bytes());
  if (src.dtype == DType::kQ8_0 || src.dtype == DType::kQ4_0) {
    // Whole rows, back in ggml's order.
    const size_t row_bytes = src.bytes() / static_cast<size_t>(src.rows());
    TANDEM_CHECK(bytes % row_bytes == 0);
    TANDEM_RETURN_IF_ERROR(copy_raw_to_host(dst, src, bytes));
    std::vector<uint8_t> row(row_bytes);
    for (size_t at = 0; at < bytes; at += row_bytes) {
      std::memcpy(row.data(), static_cast<uint8_t*>(dst) + at, row_bytes);
      cuda::join_row(row.data(), static_cast<uint8_t*>(dst) + at, weight_type(src.dtype),
                     src.row_length() / quant::kBlock);
    }
    return Status::Ok();
  }
  return copy_raw_to_host(dst, src, bytes);
}

Status CudaBackend::copy_raw_to_host(void* dst, const Tensor& src, size_t bytes) {
  // Through pinned memory: a copy into pageable memory would block the host
  // with no deadline.
  for (size_t done = 0; done < bytes; done += kStagingBytes) {
    const size_t n = std::min(kStagingBytes, bytes - done);
    TANDEM_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(pinned_[0], static_cast<const char*>(src.data) + done, n, cudaMemcpyDeviceToHost, stream_));
    TANDEM_RETURN_IF_ERROR(wait_idle());
    std::memcpy(static_cast<char*>(dst) + done, pinned_[0], n);
  }
  return Status::Ok();
}

void CudaBackend::embed(const Tensor& out, const Tensor& table, std::span<const int> tokens,
                        int64_t first_row) {
  TANDEM_CHECK(out.rows() == static_cast<int64_t>(tokens.size()));
  TANDEM_CHECK(out.row_length() == table.row_length());
  const int64_t width = table.row_length();
  for (size_t begin = 0; begin < tokens.size(); begin += cuda::kEmbedChunk) {
    cuda::EmbedTokens ids{};
    const int count = static_cast<int>(std::min<size_t>(cuda::kEmbedChunk, tokens.size() - begin));
    for (int i = 0; i < count; ++i) {
      TANDEM_CHECK(tokens[begin + i] >= 0);
      ids.ids[i] = tokens[begin + i];
    }
    TANDEM_CUDA_RECORD(cuda::embed(stream_, out.f32() + begin * width, table.data, weight_type(table.dtype), width,
                                   table.rows(), first_row, ids, count, step_arg()));
  }
}

void CudaBackend::rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w, float eps) {
  check_same_shape(out, x);
  TANDEM_CHECK(w.numel() == x.row_length());
  TANDEM_CUDA_RECORD(cuda::rmsnorm(stream_, out.f32(), x.f32(), w.f32(), x.rows(), x.row_length(), eps));
}

cuda::RopeFrequencies rope_frequencies(std::span<const double> inv_freq, const AttentionShape& s) {
  TANDEM_CHECK_MSG(static_cast<int64_t>(inv_freq.size()) == s.head_dim / 2 &&
                       inv_freq.size() <= static_cast<size_t>(cuda::kRopeMaxPairs),
                   "rope: " + std::to_string(inv_freq.size()) + " frequencies for head_dim " + std::to_string(s.head_dim));
  cuda::RopeFrequencies f{};
  std::copy(inv_freq.begin(), inv_freq.end(), f.inv_freq);
  return f;
}

void CudaBackend::rope(const Tensor& q, const Tensor& k, const AttentionShape& s, std::span<const double> inv_freq) {
  TANDEM_CHECK(q.row_length() == s.n_heads * s.head_dim);
  TANDEM_CHECK(k.row_length() == s.n_kv_heads * s.head_dim && k.rows() == q.rows());
  TANDEM_CUDA_RECORD(cuda::rope_interleaved(stream_, q.f32(), k.f32(), q.rows(), s.n_heads, s.n_kv_heads, s.head_dim,
                                            s.start_pos, rope_frequencies(inv_freq, s), step_arg()));
}

void CudaBackend::rope_store_kv(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& k_cache,
                                const Tensor& v_cache, const AttentionShape& s, std::span<const double> inv_freq) {
  TANDEM_CHECK(q.row_length() == s.n_heads * s.head_dim);
  TANDEM_CHECK(k.row_length() == s.n_kv_heads * s.head_dim && k.rows() == q.rows());
  check_same_shape(k, v);
  check_same_shape(k_cache, v_cache);
  TANDEM_CHECK(k.row_length() == k_cache.row_length());
  TANDEM_CHECK(s.start_pos >= 0 && s.start_pos + k.rows() <= k_cache.rows());
  const cuda::KvStore store{v.f32(), k_cache.f32(), v_cache.f32()};
  TANDEM_CUDA_RECORD(cuda::rope_interleaved(stream_, q.f32(), k.f32(), q.rows(), s.n_heads, s.n_kv_heads, s.head_dim,
                                            s.start_pos, rope_frequencies(inv_freq, s), step_arg(), &store));
}

void CudaBackend::store_kv(const Tensor& k_cache, const Tensor& v_cache, const Tensor& k, const Tensor& v,
                           int64_t start_pos) {
  check_same_shape(k, v);
  check_same_shape(k_cache, v_cache);
  TANDEM_CHECK(k.row_length() == k_cache.row_length());
  TANDEM_CHECK(start_pos >= 0 && start_pos + k.rows() <= k_cache.rows());
  TANDEM_CUDA_RECORD(cuda::store_kv(stream_, k_cache.f32(), v_cache.f32(), k.f32(), v.f32(), k.rows(), k.row_length(),
                                    start_pos, step_arg()));
}

void CudaBackend::swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) {
  check_same_shape(out, gate);
  check_same_shape(gate, up);
  TANDEM_CUDA_RECORD(cuda::swiglu(stream_, out.f32(), gate.f32(), up.f32(), gate.numel()));
}

void CudaBackend::add(const Tensor& x, const Tensor& y) {
  check_same_shape(x, y);
  TANDEM_CUDA_RECORD(cuda::add(stream_, x.f32(), y.f32(), x.numel()));
}

void CudaBackend::add_bias(const Tensor& x, const Tensor& bias) {
  TANDEM_CHECK_MSG(bias.numel() == x.row_length(), x.shape_string() + " + " + bias.shape_string());
  TANDEM_CUDA_RECORD(cuda::add_bias(stream_, x.f32(), bias.f32(), x.rows(), x.row_length()));
}

void CudaBackend::argmax(const Tensor& out, const Tensor& logits) {
  TANDEM_CHECK(out.dtype == DType::kI32 && out.numel() == logits.rows());
  const size_t need = cuda::argmax_scratch_bytes(logits.rows(), logits.row_length());
  if (argmax_scratch_bytes_ < need) {
    // Zeroed once (its counters); every launch leaves it so.
    auto buf = scratch(kArgmax, need);
    if (!buf.ok()) return record(buf.status());
    TANDEM_CUDA_RECORD(cudaMemsetAsync(*buf, 0, need, stream_));
    argmax_scratch_bytes_ = need;
  }
  TANDEM_CUDA_RECORD(cuda::argmax_rows(stream_, static_cast<int32_t*>(out.data), logits.f32(), logits.rows(),
                                       logits.row_length(), scratch_[kArgmax]));
}

Status CudaBackend::fill_synthetic(const Tensor& t, uint64_t seed, float scale, float offset) {
  if (t.dtype != DType::kF32 && t.dtype != DType::kBF16 && t.dtype != DType::kQ8_0 && t.dtype != DType::kQ4_0)
    return InvalidArgument("cuda backend cannot store " + std::string(dtype_name(t.dtype)) + " weights");
  (void)t.bytes();  // checks that Q tensors are whole blocks
  TANDEM_CUDA_RETURN_IF_ERROR(
      cuda::fill_synthetic(stream_, t.data, weight_type(t.dtype), t.numel(), t.row_length(), seed, scale, offset));
  return Status::Ok();
}

Status CudaBackend::decode_step(uint64_t key, std::span<const int> tokens, int64_t pos,
                                const std::function<void()>& enqueue) {
  TANDEM_CHECK(!tokens.empty() && tokens.size() <= static_cast<size_t>(cuda::kStepMaxTokens));
  cuda::StepParams params{};
  params.pos = pos;
  for (size_t i = 0; i < tokens.size(); ++i) params.tokens[i] = tokens[i];
  // By value through a kernel's parameters: no host buffer to keep alive.
  TANDEM_CUDA_RETURN_IF_ERROR(cuda::set_step(stream_, step_, params));
  StepGraph& graph = step_graphs_[key];
  if (graph.exec) {
    TANDEM_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(graph.exec, stream_));
    return error_;
  }
  // The first call runs as it is (it sizes the scratch the step uses, which
  // capture could not allocate); the second is recorded, then replayed.
  step_inputs_ = true;
  if (!graphs_ || ++graph.calls < 2) {
    enqueue();
    step_inputs_ = false;
    return error_;
  }
  Status status = cuda_status_if(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal),
                                 "cudaStreamBeginCapture", __FILE__, __LINE__);
  if (status.ok()) {
    enqueue();
    cudaGraph_t recorded = nullptr;
    status = cuda_status_if(cudaStreamEndCapture(stream_, &recorded), "cudaStreamEndCapture", __FILE__, __LINE__);
    if (status.ok()) {
      status = cuda_status_if(cudaGraphInstantiate(&graph.exec, recorded, 0), "cudaGraphInstantiate", __FILE__,
                              __LINE__);
      cudaGraphDestroy(recorded);
    }
  }
  step_inputs_ = false;
  TANDEM_RETURN_IF_ERROR(status);
  TANDEM_RETURN_IF_ERROR(error_);  // a launch that failed while recording
  TANDEM_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(graph.exec, stream_));
  return error_;
}

void CudaBackend::forget_decode_step(uint64_t key) {
  auto it = step_graphs_.find(key);
  if (it == step_graphs_.end()) return;
  if (it->second.exec) TANDEM_CUDA_RECORD(cudaGraphExecDestroy(it->second.exec));
  step_graphs_.erase(it);
}

}  // namespace tandem
