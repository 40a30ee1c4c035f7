#include "collectives/model_comm.h"

#include "collectives/stream_model_comm.h"

namespace tandem::collectives {
namespace {

// Host transports (or a backend without a stream): every exchange waits for
// the backend's kernels, then for the transport.
class CommunicatorModelComm final : public ModelComm {
 public:
  CommunicatorModelComm(Communicator& tensors, Communicator& host, Backend& backend, int tp,
                        std::chrono::milliseconds timeout)
      : tensors_(tensors), host_(host), backend_(backend), tp_(tp), timeout_(timeout) {}

  Status all_reduce_sum(const Tensor& x) override {
    TANDEM_RETURN_IF_ERROR(backend_.synchronize());
    return tensors_.all_reduce(x.data, x.data, static_cast<size_t>(x.numel()), x.dtype, ReduceOp::kSum,
                               deadline());
  }
  // Logits and candidates are 4-byte words; gathered as i32 they are moved,
  // never converted.
  Status all_gather_host(const void* local, void* out, size_t bytes) override {
    TANDEM_CHECK(bytes % sizeof(int32_t) == 0);
    return host_.all_gather(local, out, bytes / sizeof(int32_t), DType::kI32, deadline());
  }
  Status send_next(const Tensor& x) override {
    TANDEM_RETURN_IF_ERROR(backend_.synchronize());
    return tensors_.send(x.data, x.bytes(), tensors_.rank() + tp_, kActivationTag, deadline());
  }
  Status recv_prev(const Tensor& x) override {
    // Kernels of the previous chunk may still read x on the backend's stream.
    TANDEM_RETURN_IF_ERROR(backend_.synchronize());
    return tensors_.recv(x.data, x.bytes(), tensors_.rank() - tp_, kActivationTag, deadline());
  }
  Status send_to_leader(const void* data, size_t bytes) override {
    return host_.send(data, bytes, 0, kResultTag, deadline());
  }
  Status recv_from_last_stage(void* data, size_t bytes) override {
    return host_.recv(data, bytes, host_.size() - tp_, kResultTag, deadline());
  }

 private:
  Deadline deadline() const { return deadline_after(timeout_); }

  Communicator& tensors_;
  Communicator& host_;
  Backend& backend_;
  int tp_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

Result<std::unique_ptr<ModelComm>> make_model_comm(Communicator& tensors, Communicator& host,
                                                   Backend& backend, int tp, int pp,
                                                   std::chrono::milliseconds step_timeout) {
  if (tp < 1 || pp < 1 || tp * pp != tensors.size() || host.size() != tensors.size() ||
      host.rank() != tensors.rank())
    return InvalidArgument("model communicator: tp=" + std::to_string(tp) + " pp=" + std::to_string(pp) +
                           " over a group of " + std::to_string(tensors.size()) +
                           " ranks (tp * pp must equal it)");
  StreamExchanges* exchanges = tensors.stream_exchanges();
  if (exchanges != nullptr && backend.native_stream() != nullptr)
    return make_stream_model_comm(tensors, *exchanges, host, backend, tp, pp, step_timeout);
  return std::unique_ptr<ModelComm>(new CommunicatorModelComm(tensors, host, backend, tp, step_timeout));
}

}  // namespace tandem::collectives
