// The training loop of one rank: batches from the corpus, TrainModel's
// forward and backward, the data-parallel gradient all-reduce, AdamW, the
// schedule, evaluation, the cross-rank weight check and checkpoints.
//
// Parallelism: world = dp * tp ranks, one of the two 1 (two nodes: dp=2 or
// tp=2). `comm` is that world: the data-parallel group when dp > 1 (the model
// then has no comm), the tensor-parallel group when tp > 1.
//
// Data parallelism: each rank trains its own windows (dataset.h's layout), the
// gradients are summed over the ranks in buckets of `bucket_bytes` taken from
// the end of the flat gradient as the backward finishes them, on a thread of
// their own while the backward goes on (`overlap`); grad_scale makes the sum a
// mean. The all-reduce hands every rank the same bits (a ring reduces each
// chunk once and broadcasts it), so the replicas stay bitwise equal, which
// the weight check verifies.
//
// Determinism: a step depends only on (weights, moments, step): the windows
// come from (seed, step), the init from the seed, and the kernels do not
// depend on the thread count. So a run resumed from the checkpoint of step s
// repeats the uninterrupted run's losses exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "runtime/status.h"
#include "runtime/thread_pool.h"
#include "runtime/train/checkpoint.h"
#include "runtime/train/dataset.h"
#include "runtime/train/gradient_sync.h"
#include "runtime/train/optimizer.h"
#include "runtime/train/train_comm.h"
#include "runtime/train/train_model.h"

namespace tandem::train {

struct TrainerOptions {
  TrainShape shape;
  int dp = 1;
  int tp = 1;
  int64_t batch_size = 12;  // sequences per optimizer step over all ranks
  int64_t micro_batch = 0;  // sequences per forward/backward on a rank; 0: batch_size / dp
  int64_t iters = 2000;
  LrSchedule lr;
  AdamWConfig adamw;
  double grad_clip = 1.0;  // max global gradient norm; 0: off
  uint64_t seed = 1337;
  int64_t eval_interval = 250;  // 0: only at the end
  int64_t eval_batches = 20;  // validation: this many batches of batch_size windows (nanoGPT's eval_iters)
  int64_t hash_check_interval = 100;  // 0: never
  int64_t checkpoint_interval = 250;  // 0: only at the end
  std::string out_dir;                // empty: no checkpoints
  bool resume = false;                // continue from out_dir's newest checkpoint, if any
  size_t bucket_bytes = size_t{1} << 20;
  bool overlap = true;  // this rank's choice; start() overlaps only if every rank's is true
  // Fault injection for the crash tests: called with the step once this
  // rank's shard is written and before the ranks agree to commit it, and
  // once they agreed but before this rank commits (the windows
  // checkpoint.h's protocol must survive).
  std::function<void(int64_t step)> after_shard_written;
  std::function<void(int64_t step)> before_commit;
};

// InvalidArgument naming the option (e.g. "batch_size 12 is not a multiple of dp * micro_batch = 8").
Status validate_trainer_options(const TrainerOptions& options);

struct StepReport {
  int64_t step = 0;          // optimizer steps completed
  double train_loss = 0;     // mean over the step's windows on all ranks
  double val_loss = 0;       // NaN unless evaluated after this step
  double lr = 0;
  double grad_norm = 0;      // before clipping
  double step_seconds = 0;
  double comm_seconds = 0;   // waiting for the gradient all-reduce (not hidden by the backward)
  int64_t tokens = 0;        // tokens trained in this step, all ranks
};

class Trainer {
 public:
  // The corpus must pass check_corpus for the shape. `pool` runs the kernels.
  static Result<std::unique_ptr<Trainer>> create(const TrainerOptions& options, const TokenCorpus& corpus,
                                                 int rank, TrainComm* comm, ThreadPool* pool);
  ~Trainer();

  // Initialises the weights, or with `resume` loads the newest checkpoint all
  // ranks hold. Returns the step training starts from. A fresh run refuses an
  // out_dir that holds a checkpoint (it would be overwritten), and the ranks
  // refuse to train different jobs (data or settings differ between nodes).
  Result<int64_t> start();
  // Whether the gradient exchange runs beside the backward: what start()
  // agreed among the ranks.
  bool overlapping() const { return overlapping_; }
  int64_t step() const { return step_; }
  // One optimizer step (and, when due, evaluation, the weight check and a
  // checkpoint; always at the last step).
  Result<StepReport> train_step();
  // Mean validation loss over the fixed evaluation windows.
  Result<double> evaluate();
  Status save_checkpoint();
  // Rank 0 writes the model as a llama2.c checkpoint, dir/model.bin, and its
  // tokenizer, dir/tokenizer.bin: the character vocabulary's for a char
  // corpus, else a copy of `tokenizer_source`. Every rank calls it (tp
  // gathers the shards).
  Status export_model(const std::string& dir, const std::string& tokenizer_source = {});

  TrainModel& model() { return *model_; }
  // FNV-1a of the parameters every rank must agree on (all for dp; the
  // replicated tensors for tp).
  uint64_t weights_hash() const;

 private:
  Trainer(const TrainerOptions& options, const TokenCorpus& corpus, int rank, TrainComm* comm, ThreadPool* pool);
  Status check_weights_agree();
  // `mine` on this rank; Ok only if every rank's was (one all_gather).
  Status agree(const Status& mine, const std::string& what);
  uint64_t job_hash() const;

  TrainerOptions options_;
  const TokenCorpus& corpus_;
  int rank_;
  TrainComm* comm_;
  ThreadPool* pool_;
  BatchLayout layout_;
  std::unique_ptr<TrainModel> model_;
  std::unique_ptr<GradientSync> sync_;  // dp > 1, made by start()
  bool overlapping_ = false;
  std::vector<float> adam_m_;
  std::vector<float> adam_v_;
  std::vector<int> inputs_;
  std::vector<int> targets_;
  int64_t step_ = 0;
  int64_t tokens_seen_ = 0;
  std::optional<CheckpointDirLock> dir_lock_;  // out_dir's rank directory, from start()
};

}  // namespace tandem::train
