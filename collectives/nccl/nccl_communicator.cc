// The NCCL Communicator. NCCL runs non-blocking (ncclConfig_t::blocking = 0):
// every call returns at once and completion is polled against the deadline,
// so a dead peer or a hung link becomes ncclCommAbort + an error instead of a
// thread stuck inside NCCL forever.
//
// Contract differences from the host backends (communicator.h): buffers are
// device memory; send/recv take tag 0 only (NCCL orders point-to-point
// messages per peer and has no tags).
//
// Two ways to run an exchange: the Communicator calls enqueue on the
// communicator's own stream and poll it to completion (a host round trip
// each); StreamExchanges enqueues on the caller's stream and returns, and
// check() polls only NCCL's asynchronous error (ncclCommGetAsyncError),
// never the stream, so it is legal while that stream is being captured.
#include "collectives/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

namespace tandem::collectives {
namespace {

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

// A peer's failure (ncclRemoteError: it died, or its link dropped) is
// UNAVAILABLE, as communicator.h promises for a lost peer and as the
// launcher reads when it tells a first failure from its consequences;
// anything else is INTERNAL.
Status nccl_error(ncclResult_t r, const char* call, const char* file, int line) {
  const std::string m = std::string(call) + ": " + ncclGetErrorString(r) + " (" + base_name(file) + ":" +
                        std::to_string(line) + ")";
  return r == ncclRemoteError ? Unavailable("a peer failed or its link dropped: " + m) : Internal(m);
}

Status cuda_error(cudaError_t e, const char* call, const char* file, int line) {
  return Internal(std::string(call) + ": " + cudaGetErrorString(e) + " (" + base_name(file) + ":" +
                  std::to_string(line) + ")");
}

// ncclInProgress is the normal answer of a non-blocking communicator.
#define TANDEM_NCCL_CHECK(call)                                                  \
  do {                                                                           \
    ncclResult_t tandem_nccl_ = (call);                                          \
    if (tandem_nccl_ != ncclSuccess && tandem_nccl_ != ncclInProgress)           \
      return nccl_error(tandem_nccl_, #call, __FILE__, __LINE__);                \
  } while (0)

#define TANDEM_CUDA_CHECK(call)                                                  \
  do {                                                                           \
    cudaError_t tandem_cuda_ = (call);                                           \
    if (tandem_cuda_ != cudaSuccess) return cuda_error(tandem_cuda_, #call, __FILE__, __LINE__); \
  } while (0)

Result<ncclDataType_t> nccl_type(DType dtype) {
  switch (dtype) {
    case DType::kF32: return ncclFloat32;
    case DType::kF16: return ncclFloat16;
    case DType::kBF16: return ncclBfloat16;
    case DType::kI32: return ncclInt32;
    case DType::kI64: return ncclInt64;
    default: return InvalidArgument("nccl cannot reduce " + std::string(dtype_name(dtype)));
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
  }
  return ncclSum;
}

class NcclCommunicator final : public Communicator, public StreamExchanges {
 public:
  NcclCommunicator(int rank, int size, int device) : rank_(rank), size_(size), device_(device) {}
  ~NcclCommunicator() override {
    if (comm_ != nullptr) ncclCommAbort(comm_);  // never blocks, unlike ncclCommDestroy on a hung peer
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    if (scratch_ != nullptr) cudaFree(scratch_);
  }

  Status init(const ncclUniqueId& id, Deadline deadline) {
    TANDEM_CUDA_CHECK(cudaSetDevice(device_));
    TANDEM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    TANDEM_CUDA_CHECK(cudaMalloc(&scratch_, sizeof(int32_t)));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    TANDEM_NCCL_CHECK(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config));
    return wait("init", deadline, /*stream_work=*/false);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend_name() const override { return "nccl"; }

  Status all_reduce(const void* send, void* recv, size_t count, DType dtype, ReduceOp op,
                    Deadline deadline) override {
    TANDEM_ASSIGN_OR_RETURN(ncclDataType_t type, nccl_type(dtype));
    return run("all_reduce", deadline, [&] { return ncclAllReduce(send, recv, count, type, nccl_op(op), comm_, stream_); });
  }
  Status all_gather(const void* send, void* recv, size_t count, DType dtype, Deadline deadline) override {
    TANDEM_ASSIGN_OR_RETURN(ncclDataType_t type, nccl_type(dtype));
    return run("all_gather", deadline, [&] { return ncclAllGather(send, recv, count, type, comm_, stream_); });
  }
  Status reduce_scatter(const void* send, void* recv, size_t count, DType dtype, ReduceOp op,
                        Deadline deadline) override {
    TANDEM_ASSIGN_OR_RETURN(ncclDataType_t type, nccl_type(dtype));
    return run("reduce_scatter", deadline,
               [&] { return ncclReduceScatter(send, recv, count, type, nccl_op(op), comm_, stream_); });
  }
  Status broadcast(void* buffer, size_t count, DType dtype, int root, Deadline deadline) override {
    if (root < 0 || root >= size_) return InvalidArgument(prefix("broadcast") + "root " + std::to_string(root) + " out of range");
    TANDEM_ASSIGN_OR_RETURN(ncclDataType_t type, nccl_type(dtype));
    return run("broadcast", deadline, [&] { return ncclBroadcast(buffer, buffer, count, type, root, comm_, stream_); });
  }
  Status send(const void* buffer, size_t bytes, int peer, uint32_t tag, Deadline deadline) override {
    TANDEM_RETURN_IF_ERROR(check_p2p("send", peer, tag));
    return run("send", deadline, [&] { return ncclSend(buffer, bytes, ncclUint8, peer, comm_, stream_); });
  }
  Status recv(void* buffer, size_t bytes, int peer, uint32_t tag, Deadline deadline) override {
    TANDEM_RETURN_IF_ERROR(check_p2p("recv", peer, tag));
    return run("recv", deadline, [&] { return ncclRecv(buffer, bytes, ncclUint8, peer, comm_, stream_); });
  }
  Status barrier(Deadline deadline) override {
    return run("barrier", deadline,
               [&] { return ncclAllReduce(scratch_, scratch_, 1, ncclInt32, ncclSum, comm_, stream_); });
  }

  void abort(std::string_view reason) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!aborted_.exchange(true)) abort_reason_ = std::string(reason);
  }

  StreamExchanges* stream_exchanges() override { return this; }

  Status enqueue_all_reduce(const void* send, void* recv, size_t count, DType dtype, ReduceOp op, void* stream,
                            Deadline deadline) override {
    TANDEM_ASSIGN_OR_RETURN(ncclDataType_t type, nccl_type(dtype));
    return enqueue("all_reduce", stream, deadline,
                   [&](cudaStream_t s) { return ncclAllReduce(send, recv, count, type, nccl_op(op), comm_, s); });
  }
  Status enqueue_send(const void* buffer, size_t bytes, int peer, void* stream, Deadline deadline) override {
    TANDEM_RETURN_IF_ERROR(check_p2p("send", peer, 0));
    return enqueue("send", stream, deadline,
                   [&](cudaStream_t s) { return ncclSend(buffer, bytes, ncclUint8, peer, comm_, s); });
  }
  Status enqueue_recv(void* buffer, size_t bytes, int peer, void* stream, Deadline deadline) override {
    TANDEM_RETURN_IF_ERROR(check_p2p("recv", peer, 0));
    return enqueue("recv", stream, deadline,
                   [&](cudaStream_t s) { return ncclRecv(buffer, bytes, ncclUint8, peer, comm_, s); });
  }

  Status check() override {
    const char* op = "exchange on the caller's stream";
    if (aborted_) {
      // Ends the kernels still waiting for a peer on the caller's stream.
      if (comm_ != nullptr) ncclCommAbort(comm_);
      comm_ = nullptr;
      return aborted_status(op);
    }
    if (comm_ == nullptr) return aborted_status(op);
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
    if (r != ncclSuccess) return fail(op, nccl_error(r, "ncclCommGetAsyncError", __FILE__, __LINE__));
    if (async != ncclSuccess && async != ncclInProgress)
      return fail(op, nccl_error(async, "asynchronous NCCL error", __FILE__, __LINE__));
    return Status::Ok();
  }

 private:
  std::string prefix(const char* op) const { return "rank " + std::to_string(rank_) + ": " + op + ": "; }

  Status check_p2p(const char* op, int peer, uint32_t tag) const {
    if (peer < 0 || peer >= size_ || peer == rank_)
      return InvalidArgument(prefix(op) + "peer " + std::to_string(peer) + " out of range");
    if (tag != 0) return InvalidArgument(prefix(op) + "nccl has no tags (orders messages per peer): use tag 0");
    return Status::Ok();
  }

  Status aborted_status(const char* op) {
    std::lock_guard<std::mutex> lock(mutex_);
    return Aborted(prefix(op) + "communicator aborted: " + abort_reason_);
  }

  // Fails the communicator for good: NCCL state is unusable after an error.
  Status fail(const char* op, Status cause) {
    abort(cause.message());
    if (comm_ != nullptr) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    return cause.with_context(prefix(op).substr(0, prefix(op).size() - 2));
  }

  template <typename Launch>
  Status run(const char* op, Deadline deadline, Launch launch) {
    if (aborted_ || comm_ == nullptr) return aborted_status(op);
    const ncclResult_t r = launch();
    if (r != ncclSuccess && r != ncclInProgress) return fail(op, nccl_error(r, op, __FILE__, __LINE__));
    return wait(op, deadline, /*stream_work=*/true);
  }

  // Enqueues on the caller's stream, which must be on this communicator's
  // GPU (NCCL would fail obscurely otherwise), and waits only until NCCL has
  // taken the work (a non-blocking communicator may first connect to a peer).
  template <typename Launch>
  Status enqueue(const char* op, void* stream, Deadline deadline, Launch launch) {
    if (stream == nullptr) return InvalidArgument(prefix(op) + "no stream to enqueue on");
    if (aborted_ || comm_ == nullptr) return aborted_status(op);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (s != checked_stream_) {
      int device = -1;
      TANDEM_CUDA_CHECK(cudaStreamGetDevice(s, &device));
      if (device != device_)
        return InvalidArgument(prefix(op) + "the stream is on GPU " + std::to_string(device) +
                               ", the communicator on GPU " + std::to_string(device_));
      checked_stream_ = s;
    }
    const ncclResult_t r = launch(s);
    if (r != ncclSuccess && r != ncclInProgress) return fail(op, nccl_error(r, op, __FILE__, __LINE__));
    return wait(op, deadline, /*stream_work=*/false);
  }

  // Polls the communicator (and the stream's work) until done, failed,
  // aborted or past the deadline.
  Status wait(const char* op, Deadline deadline, bool stream_work) {
    for (int spins = 0;; ++spins) {
      if (aborted_) {
        if (comm_ != nullptr) ncclCommAbort(comm_);
        comm_ = nullptr;
        return aborted_status(op);
      }
      ncclResult_t async = ncclSuccess;
      const ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
      if (r != ncclSuccess) return fail(op, nccl_error(r, "ncclCommGetAsyncError", __FILE__, __LINE__));
      if (async != ncclSuccess && async != ncclInProgress)
        return fail(op, nccl_error(async, "asynchronous NCCL error", __FILE__, __LINE__));
      if (async == ncclSuccess) {
        if (!stream_work) return Status::Ok();
        const cudaError_t e = cudaStreamQuery(stream_);
        if (e == cudaSuccess) return Status::Ok();
        if (e != cudaErrorNotReady) return fail(op, cuda_error(e, "cudaStreamQuery", __FILE__, __LINE__));
      }
      if (expired(deadline)) return fail(op, DeadlineExceeded("not complete by the deadline (a peer is late or gone)"));
      // Spin briefly for latency, then yield the core.
      if (spins > 1000) std::this_thread::yield();
    }
  }

  int rank_, size_, device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaStream_t checked_stream_ = nullptr;  // a caller's stream known to be on device_
  int32_t* scratch_ = nullptr;
  std::atomic<bool> aborted_{false};
  std::mutex mutex_;
  std::string abort_reason_;
};

}  // namespace

Result<std::unique_ptr<Communicator>> make_nccl_communicator(const CommConfig& config, Bootstrap& bootstrap,
                                                             Deadline deadline) {
  int devices = 0;
  TANDEM_CUDA_CHECK(cudaGetDeviceCount(&devices));
  if (devices == 0) return Unavailable("nccl: no CUDA device");
  const int device = config.cuda_device >= 0 ? config.cuda_device : bootstrap.rank() % devices;
  if (device >= devices)
    return InvalidArgument("nccl: cuda_device " + std::to_string(device) + " but " + std::to_string(devices) + " GPUs");

  ncclUniqueId id{};
  std::string blob;
  if (bootstrap.rank() == 0) {
    TANDEM_NCCL_CHECK(ncclGetUniqueId(&id));
    blob.assign(reinterpret_cast<const char*>(&id), sizeof(id));
  }
  TANDEM_ASSIGN_OR_RETURN(std::vector<std::string> blobs, bootstrap.all_gather(blob, deadline));
  if (blobs.empty() || blobs[0].size() != sizeof(id))
    return DataLoss("nccl: rank 0 sent a unique id of " + std::to_string(blobs.empty() ? 0 : blobs[0].size()) +
                    " bytes, expected " + std::to_string(sizeof(id)));
  std::memcpy(&id, blobs[0].data(), sizeof(id));

  auto comm = std::make_unique<NcclCommunicator>(bootstrap.rank(), bootstrap.size(), device);
  TANDEM_RETURN_IF_ERROR(comm->init(id, deadline));
  return std::unique_ptr<Communicator>(std::move(comm));
}

}  // namespace tandem::collectives
