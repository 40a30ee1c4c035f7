#include "runtime/backend.h"

#include "runtime/cpu/cpu_backend.h"

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

Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options) {
  switch (options.kind) {
    case BackendKind::kCpu:
      return std::unique_ptr<Backend>(new CpuBackend(options.threads));
  }
  return InvalidArgument("unknown backend kind");
}

}  // namespace tandem
