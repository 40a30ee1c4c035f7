#include "runtime/backend.h"

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cuda/cuda_backend.h"

namespace tandem {

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    owner_ = other.owner_;
    data_ = other.data_;
    bytes_ = other.bytes_;
    other.owner_ = nullptr;
    other.data_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

void Buffer::reset() {
  if (owner_ && data_) owner_->release(data_, bytes_);
  owner_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

void Backend::norm_matmul(const Tensor& normed, const Tensor& x, const Tensor& norm_w, float eps,
                          std::span<const MatmulTarget> targets) {
  rmsnorm(normed, x, norm_w, eps);
  matmul_shared_input(normed, targets);
}

void Backend::norm_matmul_swiglu(const Tensor& out, const Tensor& up, const Tensor& normed, const Tensor& x,
                                 const Tensor& norm_w, float eps, const Tensor& w_gate, const Tensor& w_up) {
  rmsnorm(normed, x, norm_w, eps);
  const MatmulTarget gate_up[] = {{out, w_gate}, {up, w_up}};
  matmul_shared_input(normed, gate_up);
  swiglu(out, out, up);
}

void Backend::rope_store_kv(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& k_cache,
                            const Tensor& v_cache, const AttentionShape& shape, std::span<const double> inv_freq) {
  rope(q, k, shape, inv_freq);
  store_kv(k_cache, v_cache, k, v, shape.start_pos);
}

void Backend::matmul_add(const Tensor& x, const Tensor& a, const Tensor& w, const Tensor& scratch) {
  matmul(scratch, a, w);
  add(x, scratch);
}

Status Backend::decode_step(uint64_t, std::span<const int>, int64_t, const std::function<void()>& enqueue) {
  enqueue();
  return Status::Ok();
}

// The paged kernels' defaults: reached only by a programmer bug, since
// LlamaModel checks supports_paged_kv() before it plans a pool.
Status Backend::copy_from_host(const Tensor&, const void*, size_t) {
  return Unimplemented(name() + " has no copy_from_host");
}
void Backend::rope_at(const Tensor&, const Tensor&, const Tensor&, const AttentionShape&, std::span<const double>) {
  TANDEM_CHECK_MSG(false, name() + " has no paged kernels");
}
void Backend::store_kv_paged(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  TANDEM_CHECK_MSG(false, name() + " has no paged kernels");
}
void Backend::paged_attention(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const PagedAttention&) {
  TANDEM_CHECK_MSG(false, name() + " has no paged kernels");
}

Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options) {
  switch (options.kind) {
    case BackendKind::kCpu:
      return std::unique_ptr<Backend>(new CpuBackend(options.threads));
    case BackendKind::kCuda:
      return make_cuda_backend(options.device);
  }
  return InvalidArgument("unknown backend kind");
}

Result<BackendKind> parse_backend_kind(std::string_view name) {
  if (name == "cpu") return BackendKind::kCpu;
  if (name == "cuda") return BackendKind::kCuda;
  return InvalidArgument("unknown backend '" + std::string(name) + "' (known: cpu, cuda)");
}

}  // namespace tandem
