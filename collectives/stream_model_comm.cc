#include "collectives/stream_model_comm.h"

#include <string>

namespace tandem::collectives {
namespace {

// "ranks 2-3" / "rank 2".
std::string ranks(int first, int count) {
  return count == 1 ? "rank " + std::to_string(first)
                    : "ranks " + std::to_string(first) + "-" + std::to_string(first + count - 1);
}

class StreamModelComm final : public ModelComm {
 public:
  StreamModelComm(Communicator& tensors, StreamExchanges& exchanges, Communicator& host, Backend& backend,
                  int tp, int pp, std::chrono::milliseconds timeout)
      : tensors_(tensors),
        exchanges_(exchanges),
        host_(host),
        stream_(backend.native_stream()),
        tp_(tp),
        timeout_(timeout),
        check_(std::make_shared<const Backend::WaitCheck>([this](bool idle) { return on_wait(idle); })) {
    const int rank = tensors.rank(), stage = rank / tp;
    if (tp > 1) peers_ = "all_reduce with " + ranks(stage * tp, tp);
    if (stage > 0) peers_ += (peers_.empty() ? "" : ", ") + std::string("recv from rank ") + std::to_string(rank - tp);
    if (stage < pp - 1) peers_ += (peers_.empty() ? "" : ", ") + std::string("send to rank ") + std::to_string(rank + tp);
    // Held weakly by the backend: whichever of the two goes first, nothing dangles.
    backend.set_wait_check(check_);
  }

  bool stream_ordered() const override { return true; }

  Status all_reduce_sum(const Tensor& x) override {
    return exchanges_.enqueue_all_reduce(x.data, x.data, static_cast<size_t>(x.numel()), x.dtype, ReduceOp::kSum,
                                         stream_, deadline());
  }
  Status send_next(const Tensor& x) override {
    return exchanges_.enqueue_send(x.data, x.bytes(), tensors_.rank() + tp_, stream_, deadline());
  }
  Status recv_prev(const Tensor& x) override {
    // Ordered after the kernels that still read x on the same stream: no wait.
    return exchanges_.enqueue_recv(x.data, x.bytes(), tensors_.rank() - tp_, stream_, deadline());
  }

  // Host memory, after the backend's copy_to_host (which waited, and checked).
  Status all_gather_host(const void* local, void* out, size_t bytes) override {
    TANDEM_CHECK(bytes % sizeof(int32_t) == 0);
    return host_.all_gather(local, out, bytes / sizeof(int32_t), DType::kI32, deadline());
  }
  Status send_to_leader(const void* data, size_t bytes) override {
    return host_.send(data, bytes, 0, kResultTag, deadline());
  }
  Status recv_from_last_stage(void* data, size_t bytes) override {
    return host_.recv(data, bytes, host_.size() - tp_, kResultTag, deadline());
  }

 private:
  Deadline deadline() const { return deadline_after(timeout_); }

  // The backend's wait check. A wait's deadline starts at its first poll: a
  // replayed CUDA graph enqueues exchanges without calling us, so the time
  // they were enqueued is not known here, and the host waits once per step.
  Status on_wait(bool idle) {
    Status s = exchanges_.check();
    if (!s.ok()) return Status(s.code(), s.message() + " (this rank's step: " + describe() + ")");
    if (idle) {
      waiting_ = false;
      return Status::Ok();
    }
    if (!waiting_) {
      waiting_ = true;
      wait_deadline_ = deadline();
      return Status::Ok();
    }
    if (!expired(wait_deadline_)) return Status::Ok();
    const std::string message = "rank " + std::to_string(tensors_.rank()) + ": the step's exchanges on the GPU stream (" +
                                describe() + ") did not finish within the step timeout of " +
                                std::to_string(timeout_.count()) + " ms: a peer is late or gone";
    waiting_ = false;
    tensors_.abort(message);
    (void)exchanges_.check();  // ends the exchanges still waiting for the peer
    return DeadlineExceeded(message);
  }
  std::string describe() const { return peers_.empty() ? "no exchanges" : peers_; }

  Communicator& tensors_;
  StreamExchanges& exchanges_;
  Communicator& host_;
  void* stream_;
  int tp_;
  std::chrono::milliseconds timeout_;
  std::string peers_;  // the exchanges of this rank's step, for errors
  bool waiting_ = false;
  Deadline wait_deadline_{};
  std::shared_ptr<const Backend::WaitCheck> check_;
};

}  // namespace

std::unique_ptr<ModelComm> make_stream_model_comm(Communicator& tensors, StreamExchanges& exchanges,
                                                  Communicator& host, Backend& backend, int tp, int pp,
                                                  std::chrono::milliseconds step_timeout) {
  return std::make_unique<StreamModelComm>(tensors, exchanges, host, backend, tp, pp, step_timeout);
}

}  // namespace tandem::collectives
