// make_model_comm's stream path (collectives/stream_model_comm.h) on fakes,
// with no GPU: which implementation it picks, that the exchanges go to the
// backend's stream without a host wait, and how the backend's wait check
// turns an asynchronous error, an abort or a missed step deadline into a
// Status naming this rank's exchanges (the NCCL run: tests/cuda/nccl_stream_test.cc).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "collectives/collectives.h"
#include "collectives/model_comm.h"
#include "runtime/cpu/cpu_backend.h"

namespace tandem::collectives {
namespace {

using namespace std::chrono_literals;

// A backend with a stream (a dummy handle) and no kernels: `wait` is a host
// wait's check, as the cuda backend runs it.
class StreamBackend final : public Backend {
 public:
  std::string name() const override { return "fake stream"; }
  void* native_stream() const override { return const_cast<int*>(&stream_); }
  Status wait(bool idle) const { return run_wait_check(idle); }
  int synchronized = 0;

  Result<Buffer> allocate(size_t) override { return Unimplemented("fake"); }
  Result<Tensor> import_weights(const Tensor&) override { return Unimplemented("fake"); }
  Status copy_to_host(void*, const Tensor&, size_t) override { return Unimplemented("fake"); }
  Status synchronize() override {
    ++synchronized;
    return Status::Ok();
  }
  void embed(const Tensor&, const Tensor&, std::span<const int>, int64_t) override { TANDEM_CHECK(false); }
  void rmsnorm(const Tensor&, const Tensor&, const Tensor&, float) override { TANDEM_CHECK(false); }
  void matmul(const Tensor&, const Tensor&, const Tensor&) override { TANDEM_CHECK(false); }
  void matmul_shared_input(const Tensor&, std::span<const MatmulTarget>) override { TANDEM_CHECK(false); }
  void rope(const Tensor&, const Tensor&, const AttentionShape&, std::span<const double>) override {
    TANDEM_CHECK(false);
  }
  void store_kv(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t) override { TANDEM_CHECK(false); }
  void attention(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const AttentionShape&) override {
    TANDEM_CHECK(false);
  }
  void swiglu(const Tensor&, const Tensor&, const Tensor&) override { TANDEM_CHECK(false); }
  void add(const Tensor&, const Tensor&) override { TANDEM_CHECK(false); }
  void add_bias(const Tensor&, const Tensor&) override { TANDEM_CHECK(false); }
  void argmax(const Tensor&, const Tensor&) override { TANDEM_CHECK(false); }
  Status fill_synthetic(const Tensor&, uint64_t, float, float) override { return Unimplemented("fake"); }

 protected:
  void release(void*, size_t) override {}

 private:
  int stream_ = 0;
};

// A device communicator that records what is enqueued where.
class FakeDevice final : public Communicator, public StreamExchanges {
 public:
  FakeDevice(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend_name() const override { return "fake device"; }
  Status all_reduce(const void*, void*, size_t, DType, ReduceOp, Deadline) override { return host_call(); }
  Status all_gather(const void*, void*, size_t, DType, Deadline) override { return host_call(); }
  Status reduce_scatter(const void*, void*, size_t, DType, ReduceOp, Deadline) override { return host_call(); }
  Status broadcast(void*, size_t, DType, int, Deadline) override { return host_call(); }
  Status send(const void*, size_t, int, uint32_t, Deadline) override { return host_call(); }
  Status recv(void*, size_t, int, uint32_t, Deadline) override { return host_call(); }
  Status barrier(Deadline) override { return host_call(); }
  void abort(std::string_view reason) override { aborted = std::string(reason); }
  StreamExchanges* stream_exchanges() override { return this; }

  Status enqueue_all_reduce(const void*, void*, size_t count, DType, ReduceOp, void* stream, Deadline) override {
    return record("all_reduce " + std::to_string(count), stream);
  }
  Status enqueue_send(const void*, size_t bytes, int peer, void* stream, Deadline) override {
    return record("send " + std::to_string(bytes) + " to " + std::to_string(peer), stream);
  }
  Status enqueue_recv(void*, size_t bytes, int peer, void* stream, Deadline) override {
    return record("recv " + std::to_string(bytes) + " from " + std::to_string(peer), stream);
  }
  Status check() override {
    ++checks;
    if (!aborted.empty()) return Aborted("rank " + std::to_string(rank_) + ": aborted: " + aborted);
    return async_error;
  }

  std::vector<std::string> enqueued;
  void* last_stream = nullptr;
  std::string aborted;
  Status async_error;
  int checks = 0;

 private:
  Status host_call() {
    ADD_FAILURE() << "a host exchange on the device communicator";
    return Unimplemented("fake");
  }
  Status record(std::string what, void* stream) {
    enqueued.push_back(std::move(what));
    last_stream = stream;
    return Status::Ok();
  }
  int rank_, size_;
};

TEST(StreamModelComm, PickedOnlyForStreamExchangesOnABackendWithAStream) {
  StreamBackend stream_backend;
  CpuBackend cpu(1);
  FakeDevice device(0, 1);
  auto local = make_local_group(1);
  auto device_on_stream = make_model_comm(device, *local[0], stream_backend, 1, 1, 1s);
  auto device_on_cpu = make_model_comm(device, *local[0], cpu, 1, 1, 1s);
  auto host_on_stream = make_model_comm(*local[0], *local[0], stream_backend, 1, 1, 1s);
  ASSERT_TRUE(device_on_stream.ok() && device_on_cpu.ok() && host_on_stream.ok());
  EXPECT_TRUE((*device_on_stream)->stream_ordered());
  EXPECT_FALSE((*device_on_cpu)->stream_ordered());
  EXPECT_FALSE((*host_on_stream)->stream_ordered());
}

TEST(StreamModelComm, ExchangesGoToTheBackendsStreamWithoutAWait) {
  StreamBackend backend;
  float data[6] = {};
  const Tensor x = Tensor::view(data, DType::kF32, {2, 3});
  {
    FakeDevice device(1, 2);  // tp = 2
    auto local = make_local_group(2);
    auto comm = make_model_comm(device, *local[1], backend, 2, 1, 1s);
    ASSERT_TRUE(comm.ok());
    ASSERT_TRUE((*comm)->all_reduce_sum(x).ok());
    EXPECT_EQ(device.enqueued, std::vector<std::string>{"all_reduce 6"});
    EXPECT_EQ(device.last_stream, backend.native_stream());
  }
  for (int rank : {0, 1}) {  // pp = 2
    FakeDevice device(rank, 2);
    auto local = make_local_group(2);
    auto comm = make_model_comm(device, *local[rank], backend, 1, 2, 1s);
    ASSERT_TRUE(comm.ok());
    ASSERT_TRUE((rank == 0 ? (*comm)->send_next(x) : (*comm)->recv_prev(x)).ok());
    EXPECT_EQ(device.enqueued.at(0), rank == 0 ? "send 24 to 1" : "recv 24 from 0");
  }
  EXPECT_EQ(backend.synchronized, 0);
}

TEST(StreamModelComm, AnAsynchronousErrorEndsTheWaitNamingTheExchanges) {
  StreamBackend backend;
  FakeDevice device(0, 2);
  auto local = make_local_group(2);
  auto comm = make_model_comm(device, *local[0], backend, 2, 1, 10s);
  ASSERT_TRUE(comm.ok());
  EXPECT_TRUE(backend.wait(false).ok());
  device.async_error = Unavailable("rank 0: exchange: remote process exited");
  const Status s = backend.wait(false);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("remote process exited"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("all_reduce with ranks 0-1"), std::string::npos) << s.message();
  EXPECT_EQ(backend.wait(true).code(), StatusCode::kUnavailable);  // done is not succeeded
}

TEST(StreamModelComm, AWaitPastTheStepTimeoutAbortsTheCommunicator) {
  StreamBackend backend;
  FakeDevice device(1, 2);  // pp = 2, the last stage
  auto local = make_local_group(2);
  auto comm = make_model_comm(device, *local[1], backend, 1, 2, 200ms);
  ASSERT_TRUE(comm.ok());
  EXPECT_TRUE(backend.wait(false).ok());  // the wait's deadline starts here
  std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(backend.wait(true).ok());  // done in time: the next wait starts afresh
  EXPECT_TRUE(backend.wait(false).ok());
  std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(backend.wait(false).ok());
  std::this_thread::sleep_for(250ms);
  const int checks = device.checks;
  const Status s = backend.wait(false);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.to_string();
  EXPECT_NE(s.message().find("rank 1:"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("recv from rank 0"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("200 ms"), std::string::npos) << s.message();
  EXPECT_EQ(device.aborted, s.message());
  EXPECT_EQ(device.checks, checks + 2);  // the second ends the pending exchanges
  EXPECT_EQ(backend.wait(true).code(), StatusCode::kAborted);
}

TEST(StreamModelComm, TheWaitCheckGoesWithTheModelComm) {
  StreamBackend backend;
  FakeDevice device(0, 2);
  auto local = make_local_group(2);
  auto comm = make_model_comm(device, *local[0], backend, 2, 1, 1s);
  ASSERT_TRUE(comm.ok());
  device.async_error = Internal("broken");
  EXPECT_FALSE(backend.wait(true).ok());
  comm->reset();
  EXPECT_TRUE(backend.wait(true).ok());
}

}  // namespace
}  // namespace tandem::collectives
