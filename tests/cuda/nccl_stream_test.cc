// NCCL exchanges on the CUDA backend's stream (collectives/stream_model_comm.h)
// with one rank, on one GPU: make_model_comm picks the stream path for NCCL +
// cuda, the all-reduce is recorded into a decode step's CUDA graph and
// replayed with no host wait (a wait during capture would fail it), abort()
// ends the next wait, and stories260K's greedy tokens on the cuda backend with
// the NCCL ModelComm attached equal the CPU's, one host wait per token.
// Two ranks need two GPUs (NCCL refuses two ranks on one); without a GPU the
// tests skip, saying so.
#include <chrono>

#include "collectives/collectives.h"
#include "collectives/model_comm.h"
#include "runtime/cuda/cuda_backend_impl.h"
#include "runtime/llama2c_loader.h"
#include "runtime/llama_model.h"
#include "tests/cuda/cuda_test_util.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;

class NcclStream : public testing::CudaTest {
 protected:
  void SetUp() override {
    testing::CudaTest::SetUp();
    if (IsSkipped()) return;
    collectives::CommConfig config;
    config.backend = "nccl";
    config.bootstrap.rank = 0;
    config.bootstrap.world_size = 1;
    config.bootstrap.coordinator_port = 0;
    config.bootstrap.job_id = "nccl-stream-test";
    auto comm = collectives::make_communicator(config, deadline_after(60s));
    ASSERT_TRUE(comm.ok()) << comm.status().to_string();
    nccl_ = std::move(comm).value();
    host_ = collectives::make_local_group(1);
    auto model_comm = collectives::make_model_comm(*nccl_, *host_[0], *gpu_, 1, 1, 30s);
    ASSERT_TRUE(model_comm.ok()) << model_comm.status().to_string();
    comm_ = std::move(model_comm).value();
  }
  void TearDown() override {
    testing::CudaTest::TearDown();
    comm_.reset();
  }
  CudaBackend& cuda() { return dynamic_cast<CudaBackend&>(*gpu_); }

  std::unique_ptr<collectives::Communicator> nccl_;
  std::vector<std::unique_ptr<collectives::Communicator>> host_;
  std::unique_ptr<ModelComm> comm_;
};

TEST_F(NcclStream, ChoosesTheStreamPathOnlyForNcclOnCuda) {
  EXPECT_TRUE(comm_->stream_ordered());
  EXPECT_NE(gpu_->native_stream(), nullptr);
  EXPECT_EQ(cpu_.native_stream(), nullptr);
  // Host transport, or a backend without a stream: the synchronous path.
  auto host_path = collectives::make_model_comm(*host_[0], *host_[0], *gpu_, 1, 1, 30s);
  auto cpu_path = collectives::make_model_comm(*nccl_, *host_[0], cpu_, 1, 1, 30s);
  ASSERT_TRUE(host_path.ok() && cpu_path.ok());
  EXPECT_FALSE((*host_path)->stream_ordered());
  EXPECT_FALSE((*cpu_path)->stream_ordered());
}

// Embedding row -> all-reduce (NCCL) -> x += x, as a decode step: run, then
// recorded (capture fails if anything waits on the stream), then replayed
// with new tokens. No host wait inside any step.
TEST_F(NcclStream, AllReduceIsRecordedInTheDecodeStepGraphAndReplayed) {
  constexpr int kRows = 8, kWidth = 96;
  const std::vector<float> rows = testing::random_values(kRows * kWidth, 3);
  const Tensor table = upload(rows, {kRows, kWidth});
  const Tensor x = poisoned({1, kWidth});
  constexpr uint64_t kKey = 0x5eed;
  for (int step = 0; step < 6; ++step) {
    const int token = (step * 5 + 1) % kRows;
    const uint64_t waits = cuda().host_waits();
    Status exchange;
    const Status s = gpu_->decode_step(kKey, std::span<const int>(&token, 1), step, [&] {
      gpu_->embed(x, table, std::span<const int>(&token, 1));
      exchange = comm_->all_reduce_sum(x);
      gpu_->add(x, x);
    });
    ASSERT_TRUE(s.ok()) << "step " << step << ": " << s.to_string();
    ASSERT_TRUE(exchange.ok()) << "step " << step << ": " << exchange.to_string();
    EXPECT_EQ(cuda().host_waits(), waits) << "step " << step << " waited on the host";
    std::vector<float> want(rows.begin() + token * kWidth, rows.begin() + (token + 1) * kWidth);
    for (float& v : want) v *= 2;
    testing::expect_close(download(x), want, 0, "step " + std::to_string(step));
  }
  gpu_->forget_decode_step(kKey);
}

TEST_F(NcclStream, AbortEndsTheNextWaitWithTheReason) {
  const Tensor x = upload(testing::random_values(256, 4), {1, 256});
  ASSERT_TRUE(comm_->all_reduce_sum(x).ok());
  nccl_->abort("test says stop");
  const Status waited = gpu_->synchronize();
  EXPECT_EQ(waited.code(), StatusCode::kAborted) << waited.to_string();
  EXPECT_NE(waited.message().find("test says stop"), std::string::npos) << waited.message();
  EXPECT_EQ(comm_->all_reduce_sum(x).code(), StatusCode::kAborted);
  comm_.reset();  // the backend's wait check goes with it: TearDown's wait succeeds
}

// With one rank the model is whole (tp = 1) and calls no exchange; what this
// shows is that the NCCL ModelComm's wait check on the backend (NCCL's
// asynchronous error polled in every host wait) leaves the decode loop as it
// was: the CPU's tokens, decode steps replayed as CUDA graphs, and one host
// wait per token (the token's read-back).
TEST_F(NcclStream, StoriesGreedyTokensEqualTheCpusWithTheNcclModelComm) {
  auto cpu_weights = load_llama2c(testing::stories_dir() + "/stories260K.bin");
  auto gpu_weights = load_llama2c(testing::stories_dir() + "/stories260K.bin");
  ASSERT_TRUE(cpu_weights.ok() && gpu_weights.ok()) << cpu_weights.status().to_string();
  auto cpu_model = LlamaModel::create(cpu_, std::move(*cpu_weights), {});
  auto gpu_model = LlamaModel::create(*gpu_, std::move(*gpu_weights), {}, comm_.get());
  ASSERT_TRUE(cpu_model.ok() && gpu_model.ok()) << gpu_model.status().to_string();
  const auto want = testing::greedy_tokens(**cpu_model, 128);
  // The first pass sizes the backend's scratch (a wait) and records the step.
  EXPECT_EQ(testing::greedy_tokens(**gpu_model, 128), want);
  const uint64_t waits = cuda().host_waits();
  EXPECT_EQ(testing::greedy_tokens(**gpu_model, 128), want);
  EXPECT_EQ(cuda().host_waits() - waits, 127u) << "host waits over 127 decode steps";
}

}  // namespace
}  // namespace tandem
