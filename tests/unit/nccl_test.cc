// The NCCL communicator with one rank (one GPU): every collective on device
// buffers, outputs poisoned first so an unwritten element fails, and abort.
// Two ranks need two GPUs; without a GPU the tests skip, saying so.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <vector>

#include "collectives/collectives.h"
#include "runtime/cuda/cuda_device.h"

namespace tandem::collectives {
namespace {

using namespace std::chrono_literals;

class NcclOneRank : public ::testing::Test {
 protected:
  void SetUp() override {
    auto gpus = list_cuda_devices();
    if (!gpus.ok()) GTEST_SKIP() << "no usable GPU here: " << gpus.status().message();
    CommConfig config;
    config.backend = "nccl";
    config.bootstrap.rank = 0;
    config.bootstrap.world_size = 1;
    config.bootstrap.coordinator_port = 0;
    config.bootstrap.job_id = "nccl-test";
    auto comm = make_communicator(config, deadline_after(60s));
    ASSERT_TRUE(comm.ok()) << comm.status().to_string();
    comm_ = std::move(comm).value();
    ASSERT_EQ(cudaMalloc(&a_, kCount * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&b_, kCount * sizeof(float)), cudaSuccess);
  }
  void TearDown() override {
    if (a_) cudaFree(a_);
    if (b_) cudaFree(b_);
  }

  void upload(float* dst, const std::vector<float>& v) {
    ASSERT_EQ(cudaMemcpy(dst, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<float> download(const float* src) {
    std::vector<float> v(kCount);
    EXPECT_EQ(cudaMemcpy(v.data(), src, kCount * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }

  static constexpr size_t kCount = 4097;  // odd: no kernel gets a round size
  std::unique_ptr<Communicator> comm_;
  float* a_ = nullptr;
  float* b_ = nullptr;
  std::vector<float> input_ = [] {
    std::vector<float> v(kCount);
    for (size_t i = 0; i < kCount; ++i) v[i] = static_cast<float>(i % 251) - 100.0f;
    return v;
  }();
  std::vector<float> poison_ = std::vector<float>(kCount, std::nanf(""));
};

TEST_F(NcclOneRank, EveryCollectiveCopiesItsInput) {
  const Deadline d = deadline_after(30s);
  for (int op = 0; op < 4; ++op) {
    upload(a_, input_);
    upload(b_, poison_);
    Status s;
    switch (op) {
      case 0: s = comm_->all_reduce(a_, b_, kCount, DType::kF32, ReduceOp::kSum, d); break;
      case 1: s = comm_->all_gather(a_, b_, kCount, DType::kF32, d); break;
      case 2: s = comm_->reduce_scatter(a_, b_, kCount, DType::kF32, ReduceOp::kMax, d); break;
      case 3:
        s = comm_->broadcast(a_, kCount, DType::kF32, 0, d);
        upload(b_, download(a_));
        break;
    }
    ASSERT_TRUE(s.ok()) << "op " << op << ": " << s.to_string();
    EXPECT_EQ(download(b_), input_) << "op " << op;
  }
  EXPECT_TRUE(comm_->barrier(d).ok());
}

TEST_F(NcclOneRank, RefusesBadArguments) {
  const Deadline d = deadline_after(5s);
  EXPECT_EQ(comm_->broadcast(a_, kCount, DType::kF32, 1, d).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(comm_->all_reduce(a_, b_, 32, DType::kQ8_0, ReduceOp::kSum, d).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(comm_->send(a_, 4, 0, 0, d).code(), StatusCode::kInvalidArgument);  // self
}

TEST_F(NcclOneRank, AbortFailsLaterCallsWithTheReason) {
  comm_->abort("test says stop");
  Status s = comm_->all_reduce(a_, b_, kCount, DType::kF32, ReduceOp::kSum, deadline_after(5s));
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_NE(s.message().find("test says stop"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace tandem::collectives
