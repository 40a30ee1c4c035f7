// Training checkpoints that survive a crash. Each rank owns a directory
// (out_dir/rank-<r>/, on its own node) holding shard files and a manifest:
//
//   step-00000500.ckpt   this rank's parameters, AdamW moments and meta
//   latest               text: the step of the newest complete checkpoint
//   lock                 flock'ed by the run using the directory (CheckpointDirLock)
//
// Writing step N (every rank, then Trainer's barrier, then every rank):
//   1. write_shard: the shard to a temporary file, fsync, rename, fsync the
//      directory: a crash leaves the previous files whole;
//   2. (all ranks confirm step 1)
//   3. commit: `latest` replaced atomically by N, then every shard but N
//      and the one `latest` named before removed (two are kept: a rank may
//      crash between steps 2 and 3 while another has committed, and the
//      ranks then resume from the older, which all still hold).
// Resuming: every rank reads its `latest`; Trainer takes the smallest over
// the ranks, and each rank loads that step's shard. A rank with no `latest`
// while its peers name step N died between steps 2 and 3 of the first
// checkpoint: it holds N's shard, and the ranks resume from N.
//
// A shard is versioned and checksummed (layout: checkpoint_format.h);
// read_shard refuses a file that is truncated, corrupt, of another version
// (DataLoss) or of another job's shape (FailedPrecondition), naming the file
// and what is wrong, before reading its arrays.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace tandem::train {

inline constexpr uint32_t kCheckpointVersion = 1;

struct ShardMeta {
  int64_t step = 0;          // optimizer steps completed
  int rank = 0;
  int world = 1;             // dp * tp
  int tp = 1;
  int dp = 1;
  uint64_t job_hash = 0;     // the model shape, data and optimizer settings that must match on resume
  uint64_t seed = 0;
  int64_t tokens_seen = 0;
};

struct ShardState {
  ShardMeta meta;
  std::vector<float> params;
  std::vector<float> adam_m;
  std::vector<float> adam_v;
};

std::string rank_directory(const std::string& out_dir, int rank);

// Held while a run uses out_dir/rank-<r>/ (an flock on its `lock` file, so
// released by a crash too): a second run on the same directory would commit
// over the first's checkpoints and delete its half-written shards.
class CheckpointDirLock {
 public:
  // Creates the directory as needed. FailedPrecondition when another run
  // holds it; a file system without flock (ENOLCK) goes unlocked.
  static Result<CheckpointDirLock> acquire(const std::string& out_dir, int rank);
  CheckpointDirLock(CheckpointDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  CheckpointDirLock& operator=(CheckpointDirLock&&) = delete;
  CheckpointDirLock(const CheckpointDirLock&) = delete;
  ~CheckpointDirLock();

 private:
  explicit CheckpointDirLock(int fd) : fd_(fd) {}
  int fd_;
};
std::string shard_path(const std::string& out_dir, int rank, int64_t step);

// Step 1 above; creates the rank's directory as needed. InvalidArgument
// unless world == tp * dp, 0 <= rank < world, step >= 0 and both moments
// hold as many values as params.
Status write_shard(const std::string& out_dir, const ShardMeta& meta, std::span<const float> params,
                   std::span<const float> adam_m, std::span<const float> adam_v);
// Step 3 above. FailedPrecondition if this rank's shard of `step` is
// missing. Keeps the shard `latest` named before when it is older than
// `step`; removes every other shard (those newer than `step` were written by
// a run that crashed before committing them) and temp files a crash
// mid-write left. A malformed `latest` is an error: nothing is removed.
Status commit_checkpoint(const std::string& out_dir, int rank, int64_t step);
// The rank's `latest` step; nullopt when it has none (a fresh run). A
// malformed manifest is an error naming it.
Result<std::optional<int64_t>> latest_step(const std::string& out_dir, int rank);
// Loads a shard into the caller's arrays (each as long as the job's
// parameters), checking it against what the resuming job expects
// (expected.step/rank/world/tp/dp/job_hash and the parameter count): a
// resume needs no memory beyond what training holds anyway. On an error
// the arrays may hold part of the file and must not be used.
Result<ShardMeta> read_shard_into(const std::string& out_dir, const ShardMeta& expected, std::span<float> params,
                                  std::span<float> adam_m, std::span<float> adam_v);
// The same into arrays of its own (n_params each), for tools and tests.
Result<ShardState> read_shard(const std::string& out_dir, const ShardMeta& expected, int64_t n_params);

}  // namespace tandem::train
