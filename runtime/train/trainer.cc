#include "runtime/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <new>

#include "runtime/atomic_file.h"
#include "runtime/deadline.h"
#include "runtime/hash.h"
#include "runtime/mapped_file.h"
#include "runtime/train/checkpoint.h"

namespace tandem::train {
namespace {

template <class T> uint64_t fnv1a_value(uint64_t h, T value) { return fnv1a(h, &value, sizeof(value)); }

std::string fail_option(const std::string& name, const std::string& why) { return name + ": " + why; }

}  // namespace

Status validate_trainer_options(const TrainerOptions& o) {
  TANDEM_RETURN_IF_ERROR(validate_train_shape(o.shape));
  if (o.dp < 1 || o.tp < 1) return InvalidArgument(fail_option("dp, tp", "must be at least 1"));
  if (o.dp > 1 && o.tp > 1) {
    return InvalidArgument("dp=" + std::to_string(o.dp) + " with tp=" + std::to_string(o.tp) +
                           ": a training job is data- or tensor-parallel, not both yet");
  }
  TANDEM_RETURN_IF_ERROR(check_tensor_parallel(o.shape, TensorParallelRank{o.tp, 0}));
  if (o.batch_size < 1) return InvalidArgument(fail_option("batch_size", "must be at least 1"));
  const int64_t micro = o.micro_batch > 0 ? o.micro_batch : o.batch_size / o.dp;
  if (micro < 1 || o.batch_size % (o.dp * micro) != 0) {
    return InvalidArgument(fail_option("batch_size", std::to_string(o.batch_size) + " is not a multiple of dp * micro_batch = " +
                                                         std::to_string(o.dp) + " * " + std::to_string(micro)));
  }
  if (o.iters < 1) return InvalidArgument(fail_option("iters", "must be at least 1"));
  if (!(o.lr.max_lr > 0) || !(o.lr.min_lr >= 0) || o.lr.min_lr > o.lr.max_lr) {
    return InvalidArgument(fail_option("lr", "needs 0 <= min_lr <= lr and lr > 0"));
  }
  if (o.lr.warmup_steps < 0 || o.lr.decay_steps < o.lr.warmup_steps) {
    return InvalidArgument(fail_option("warmup_iters", "needs 0 <= warmup_iters <= lr_decay_iters"));
  }
  if (!(o.adamw.beta1 >= 0 && o.adamw.beta1 < 1) || !(o.adamw.beta2 >= 0 && o.adamw.beta2 < 1)) {
    return InvalidArgument(fail_option("beta1, beta2", "must be in [0, 1)"));
  }
  if (!(o.adamw.weight_decay >= 0) || !(o.grad_clip >= 0)) {
    return InvalidArgument(fail_option("weight_decay, grad_clip", "must be >= 0"));
  }
  if (o.eval_batches < 1) return InvalidArgument(fail_option("eval_batches", "must be at least 1"));
  if (o.eval_interval < 0 || o.hash_check_interval < 0 || o.checkpoint_interval < 0) {
    return InvalidArgument(fail_option("intervals", "must be >= 0 (0: at the end only / never)"));
  }
  if (o.resume && o.out_dir.empty()) return InvalidArgument(fail_option("resume", "needs out_dir"));
  return Status::Ok();
}

Trainer::Trainer(const TrainerOptions& options, const TokenCorpus& corpus, int rank, TrainComm* comm,
                 ThreadPool* pool)
    : options_(options), corpus_(corpus), rank_(rank), comm_(comm), pool_(pool) {
  layout_.seq_len = options.shape.seq_len;
  layout_.micro_batch = options.micro_batch > 0 ? options.micro_batch : options.batch_size / options.dp;
  layout_.dp = options.dp;
  layout_.accum = options.batch_size / (options.dp * layout_.micro_batch);
}

Trainer::~Trainer() = default;

Result<std::unique_ptr<Trainer>> Trainer::create(const TrainerOptions& options, const TokenCorpus& corpus, int rank,
                                                 TrainComm* comm, ThreadPool* pool) {
  TANDEM_RETURN_IF_ERROR(validate_trainer_options(options));
  const int world = options.dp * options.tp;
  if (world > 1 && (comm == nullptr || comm->size() != world || comm->rank() != rank)) {
    return InvalidArgument("trainer: dp * tp = " + std::to_string(world) + " ranks need a communicator of that size");
  }
  TANDEM_RETURN_IF_ERROR(check_corpus(corpus, options.shape.seq_len, options.shape.vocab_size));
  std::unique_ptr<Trainer> t(new Trainer(options, corpus, rank, comm, pool));
  TrainComm* tp_comm = options.tp > 1 ? comm : nullptr;
  // The model's arrays and the moments are most of a rank's memory; a model
  // too large for the node is an error to report, not std::bad_alloc
  // ending the worker.
  try {
    TANDEM_ASSIGN_OR_RETURN(t->model_, TrainModel::create(options.shape, TensorParallelRank{options.tp, options.tp > 1 ? rank : 0},
                                                          tp_comm, pool, t->layout_.micro_batch));
    const size_t n = t->model_->params().size();
    t->adam_m_.assign(n, 0.0f);
    t->adam_v_.assign(n, 0.0f);
    const size_t window = static_cast<size_t>(t->layout_.micro_batch * options.shape.seq_len);
    t->inputs_.resize(window);
    t->targets_.resize(window);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("trainer: out of memory allocating the model (dim " + std::to_string(options.shape.dim) +
                             ", " + std::to_string(options.shape.n_layers) + " layers, micro-batch " +
                             std::to_string(t->layout_.micro_batch) + " x " + std::to_string(options.shape.seq_len) +
                             " tokens), its gradients, activations and AdamW moments");
  }
  return t;
}

uint64_t Trainer::job_hash() const {
  const TrainerOptions& o = options_;
  uint64_t h = kFnv1aOffset;
  for (int64_t v : {o.shape.dim, o.shape.n_layers, o.shape.n_heads, o.shape.n_kv_heads, o.shape.hidden_dim,
                    o.shape.vocab_size, o.shape.seq_len, o.batch_size, layout_.micro_batch, o.lr.warmup_steps,
                    o.lr.decay_steps, static_cast<int64_t>(corpus_.train.size()), static_cast<int64_t>(corpus_.val.size())}) {
    h = fnv1a_value(h, v);
  }
  for (double v : {static_cast<double>(o.shape.norm_eps), static_cast<double>(o.shape.rope_theta), o.lr.max_lr,
                   o.lr.min_lr, o.adamw.beta1, o.adamw.beta2, o.adamw.eps, o.adamw.weight_decay, o.grad_clip}) {
    h = fnv1a_value(h, v);
  }
  h = fnv1a_value(h, o.seed);
  return fnv1a(h, corpus_.chars.data(), corpus_.chars.size());
}

uint64_t Trainer::weights_hash() const {
  uint64_t h = kFnv1aOffset;
  std::span<const float> p = model_->params();
  for (const ParamTensor& t : model_->tensors()) {
    if (options_.tp > 1 && !t.replicated) continue;
    h = fnv1a(h, p.data() + t.offset, static_cast<size_t>(t.numel()) * sizeof(float));
  }
  return h;
}

Status Trainer::check_weights_agree() {
  if (comm_ == nullptr || comm_->size() == 1) return Status::Ok();
  const uint64_t mine = weights_hash();
  std::vector<uint64_t> all(static_cast<size_t>(comm_->size()));
  TANDEM_RETURN_IF_ERROR(comm_->all_gather(&mine, all.data(), sizeof(mine)));
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r] != all[0]) {
      return DataLoss("the ranks' weights differ after step " + std::to_string(step_) + ": rank 0 hashes to " +
                      std::to_string(all[0]) + ", rank " + std::to_string(r) + " to " + std::to_string(all[r]) +
                      " (a replica diverged: non-deterministic kernels or a corrupted exchange)");
    }
  }
  return Status::Ok();
}

// Every rank takes part in every exchange below whatever its own outcome, so
// a rank that fails (a bad manifest, a missing shard) makes the others fail
// at once with its reason instead of leaving them waiting for the deadline.
Status Trainer::agree(const Status& mine, const std::string& what) {
  const int world = comm_ ? comm_->size() : 1;
  if (world == 1) return mine;
  const int32_t ok = mine.ok() ? 1 : 0;
  std::vector<int32_t> all(static_cast<size_t>(world));
  TANDEM_RETURN_IF_ERROR(comm_->all_gather(&ok, all.data(), sizeof(ok)));
  if (!mine.ok()) return mine;
  for (size_t r = 0; r < all.size(); ++r) {
    if (!all[r]) return Aborted(what + ": rank " + std::to_string(r) + " failed (its log says why)");
  }
  return Status::Ok();
}

Result<int64_t> Trainer::start() {
  const int world = comm_ ? comm_->size() : 1;
  // The ranks must be training the same job: one data file, one config.
  const uint64_t hash = job_hash();
  std::vector<uint64_t> hashes(static_cast<size_t>(world), hash);
  if (world > 1) TANDEM_RETURN_IF_ERROR(comm_->all_gather(&hash, hashes.data(), sizeof(hash)));
  for (size_t r = 1; r < hashes.size(); ++r) {
    if (hashes[r] != hashes[0]) {
      return FailedPrecondition("rank " + std::to_string(r) + " trains another job than rank 0: the training text, " +
                                "its vocabulary or the train.* settings differ between the nodes");
    }
  }

  // Overlap is each rank's own choice (train.overlap: auto looks at its
  // host's CPUs), but the exchanges must match call for call: overlap only
  // where every rank chose it.
  overlapping_ = options_.overlap;
  if (world > 1) {
    const uint64_t mine = overlapping_ ? 1 : 0;
    std::vector<uint64_t> wishes(static_cast<size_t>(world));
    TANDEM_RETURN_IF_ERROR(comm_->all_gather(&mine, wishes.data(), sizeof(mine)));
    overlapping_ = std::all_of(wishes.begin(), wishes.end(), [](uint64_t w) { return w == 1; });
  }
  if (options_.dp > 1 && !sync_)
    sync_ = std::make_unique<GradientSync>(*comm_, model_->grads(), options_.bucket_bytes, overlapping_);

  // The directory is this run's from here on (a second run on it fails
  // here), so what `latest` says stays true until this run commits.
  Result<std::optional<int64_t>> latest = std::optional<int64_t>();
  if (!options_.out_dir.empty()) {
    Result<CheckpointDirLock> lock = CheckpointDirLock::acquire(options_.out_dir, rank_);
    if (lock.ok()) {
      dir_lock_.emplace(std::move(lock).value());
      latest = latest_step(options_.out_dir, rank_);
    } else {
      latest = lock.status();
    }
  }
  TANDEM_RETURN_IF_ERROR(agree(latest.status(), "reading the checkpoint manifests"));
  std::vector<int64_t> steps(static_cast<size_t>(world), latest->value_or(-1));
  if (world > 1) {
    const int64_t mine = latest->value_or(-1);
    TANDEM_RETURN_IF_ERROR(comm_->all_gather(&mine, steps.data(), sizeof(mine)));
  }
  const auto [lo, hi] = std::minmax_element(steps.begin(), steps.end());
  if (*hi >= 0 && !options_.resume) {
    return FailedPrecondition(options_.out_dir + " holds a checkpoint of step " + std::to_string(*hi) + " (rank " +
                              std::to_string(hi - steps.begin()) +
                              "): set train.resume=true to continue it, or name another train.out_dir");
  }
  if (*hi < 0) {  // a fresh run
    model_->init(options_.seed);
    step_ = 0;
    tokens_seen_ = 0;
    return step_;
  }
  int64_t from = *lo;
  if (*lo < 0) {
    // The first checkpoint's window: a rank that died after every rank had
    // written step hi (they agreed on it before any committed) but before
    // its own commit has no `latest`, while a peer's names hi. It holds the
    // shard all the same, and every rank resumes from hi. A rank without
    // the shard (or peers naming different steps, which the protocol never
    // leaves) means the nodes do not share one out_dir's history.
    const size_t missing = static_cast<size_t>(lo - steps.begin());
    const bool one_step = std::all_of(steps.begin(), steps.end(), [&](int64_t s) { return s < 0 || s == *hi; });
    std::error_code ec;
    const bool holds = latest->has_value() || std::filesystem::is_regular_file(shard_path(options_.out_dir, rank_, *hi), ec);
    const Status usable = one_step && holds ? Status::Ok()
                                            : FailedPrecondition("resume: rank " + std::to_string(missing) +
                                                                 " has no checkpoint in " + options_.out_dir +
                                                                 " but rank " + std::to_string(hi - steps.begin()) +
                                                                 " has step " + std::to_string(*hi) +
                                                                 " (is out_dir the same on every node?)");
    TANDEM_RETURN_IF_ERROR(agree(usable, "resuming the first checkpoint, step " + std::to_string(*hi)));
    from = *hi;
  }
  ShardMeta expected;
  expected.step = from;
  expected.rank = rank_;
  expected.world = world;
  expected.tp = options_.tp;
  expected.dp = options_.dp;
  expected.job_hash = hash;
  expected.seed = options_.seed;
  // Straight into the arrays training holds: a resume needs no second copy
  // of the parameters and moments (which a model sized to the node's memory
  // would not have room for). A failed read leaves them partly written, and
  // the job ends.
  Result<ShardMeta> loaded = read_shard_into(options_.out_dir, expected, model_->params(), adam_m_, adam_v_);
  TANDEM_RETURN_IF_ERROR(agree(loaded.status(), "loading the checkpoint of step " + std::to_string(from)));
  // Only once every rank has loaded: a rank that committed a newer step than
  // the others drops it, so its two kept shards are again ones every rank
  // holds (checkpoint.h), and one that never committed `from` commits it.
  // Earlier, a peer's failed load would have cost the newer checkpoint that
  // every rank wrote.
  Status committed;
  if (latest->value_or(-1) != from) committed = commit_checkpoint(options_.out_dir, rank_, from);
  TANDEM_RETURN_IF_ERROR(agree(committed, "recommitting the checkpoint of step " + std::to_string(from)));
  step_ = loaded->step;
  tokens_seen_ = loaded->tokens_seen;
  TANDEM_RETURN_IF_ERROR(check_weights_agree());
  return step_;
}

Result<double> Trainer::evaluate() {
  const int dp_rank = options_.dp > 1 ? rank_ : 0;
  // eval_batches of batch_size windows, in micro-batches: the same windows
  // whatever the dp x micro_batch split.
  const int64_t micro_batches = options_.eval_batches * options_.batch_size / layout_.micro_batch;
  double sum = 0;
  for (int64_t i = dp_rank; i < micro_batches; i += options_.dp) {
    eval_batch(corpus_.val, options_.seed, i, layout_, inputs_, targets_);
    TANDEM_ASSIGN_OR_RETURN(const double loss, model_->loss(inputs_, targets_, layout_.micro_batch));
    sum += loss;
  }
  if (options_.dp > 1) {
    double total[1] = {sum};
    TANDEM_RETURN_IF_ERROR(all_reduce_sum_f64(*comm_, total));
    sum = total[0];
  }
  return sum / static_cast<double>(micro_batches);
}

Result<StepReport> Trainer::train_step() {
  // The gradient exchange is made by start(), once the ranks agree on it.
  if (options_.dp > 1 && !sync_) return FailedPrecondition("trainer: train_step() before start()");
  const auto started = Clock::now();
  StepReport report;
  const int dp_rank = options_.dp > 1 ? rank_ : 0;
  const float grad_scale = 1.0f / static_cast<float>(layout_.accum * options_.dp);
  model_->zero_grads();
  double loss_sum = 0;
  for (int64_t m = 0; m < layout_.accum; ++m) {
    sample_batch(corpus_.train, options_.seed, step_, layout_, dp_rank, m, inputs_, targets_);
    const bool last = m + 1 == layout_.accum;
    GradsFinalFn on_final;
    if (last && sync_) {
      sync_->begin();
      on_final = [this](int64_t offset) { sync_->ready(offset); };
    }
    TANDEM_ASSIGN_OR_RETURN(const double loss,
                            model_->forward_backward(inputs_, targets_, layout_.micro_batch, grad_scale, on_final));
    loss_sum += loss;
  }
  if (sync_) TANDEM_RETURN_IF_ERROR(sync_->finish(&report.comm_seconds));

  // One exchange for the loss and, under tp, the shards' squared gradient norms.
  std::span<float> grads = model_->grads();
  double sharded_sq = 0, replicated_sq = 0;
  for (const ParamTensor& t : model_->tensors()) {
    const double sq = sum_of_squares(grads.subspan(static_cast<size_t>(t.offset), static_cast<size_t>(t.numel())));
    (t.replicated || options_.tp == 1 ? replicated_sq : sharded_sq) += sq;
  }
  double totals[2] = {loss_sum / static_cast<double>(layout_.accum), sharded_sq};
  if (comm_ && comm_->size() > 1) {
    const auto exchange = Clock::now();
    if (options_.tp > 1) totals[0] /= options_.tp;  // every tp rank holds the same loss
    TANDEM_RETURN_IF_ERROR(all_reduce_sum_f64(*comm_, totals));
    if (options_.dp > 1) totals[0] /= options_.dp;
    report.comm_seconds += seconds_since(exchange);
  }
  report.train_loss = totals[0];
  report.grad_norm = std::sqrt(totals[1] + replicated_sq);
  // Every rank sees the same values, so every rank stops here together; the
  // weights and the checkpoints stay as they were.
  if (!std::isfinite(report.grad_norm) || !std::isfinite(report.train_loss)) {
    return DataLoss("step " + std::to_string(step_ + 1) + ": the loss (" + std::to_string(report.train_loss) +
                    ") or the gradient norm (" + std::to_string(report.grad_norm) +
                    ") is not finite; the weights were not updated (a lower train.lr or train.grad_clip may help, "
                    "in a new train.out_dir: a resume must keep the settings its checkpoints were trained with)");
  }
  const double clip = clip_factor(report.grad_norm, options_.grad_clip);
  if (clip < 1.0) {
    const float c = static_cast<float>(clip);
    for (float& g : grads) g *= c;
  }
  report.lr = options_.lr.at(step_);
  std::span<float> params = model_->params();
  for (const ParamTensor& t : model_->tensors()) {
    const size_t at = static_cast<size_t>(t.offset), n = static_cast<size_t>(t.numel());
    adamw_update(params.subspan(at, n), grads.subspan(at, n), std::span<float>(adam_m_).subspan(at, n),
                 std::span<float>(adam_v_).subspan(at, n), report.lr, options_.adamw, step_ + 1, t.decay);
  }
  ++step_;
  report.step = step_;
  report.tokens = options_.batch_size * options_.shape.seq_len;
  tokens_seen_ += report.tokens;

  const bool last = step_ >= options_.iters;
  auto due = [&](int64_t interval) { return last || (interval > 0 && step_ % interval == 0); };
  if (options_.hash_check_interval > 0 && due(options_.hash_check_interval)) TANDEM_RETURN_IF_ERROR(check_weights_agree());
  report.val_loss = std::numeric_limits<double>::quiet_NaN();
  if (due(options_.eval_interval)) {
    TANDEM_ASSIGN_OR_RETURN(report.val_loss, evaluate());
  }
  if (!options_.out_dir.empty() && due(options_.checkpoint_interval)) TANDEM_RETURN_IF_ERROR(save_checkpoint());
  report.step_seconds = seconds_since(started);
  return report;
}

Status Trainer::save_checkpoint() {
  ShardMeta meta;
  meta.step = step_;
  meta.rank = rank_;
  meta.world = options_.dp * options_.tp;
  meta.tp = options_.tp;
  meta.dp = options_.dp;
  meta.job_hash = job_hash();
  meta.seed = options_.seed;
  meta.tokens_seen = tokens_seen_;
  const Status written = write_shard(options_.out_dir, meta, model_->params(), adam_m_, adam_v_);
  if (written.ok() && options_.after_shard_written) options_.after_shard_written(step_);
  // Commit only once every rank holds step N, so `latest` never names a step
  // some rank lacks (checkpoint.h).
  TANDEM_RETURN_IF_ERROR(agree(written, "checkpoint of step " + std::to_string(step_) +
                                            " (the previous checkpoint stays the latest)"));
  if (options_.before_commit) options_.before_commit(step_);
  return commit_checkpoint(options_.out_dir, rank_, step_);
}

Status Trainer::export_model(const std::string& dir, const std::string& tokenizer_source) {
  std::vector<float> full;
  if (options_.tp > 1) {
    TANDEM_RETURN_IF_ERROR(model_->gather_full(&full));
  } else if (rank_ == 0) {
    const std::span<const float> p = model_->params();
    full.assign(p.begin(), p.end());
  }
  if (rank_ != 0) return Status::Ok();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Unavailable("export: cannot create " + dir + ": " + ec.message());
  TANDEM_RETURN_IF_ERROR(export_llama2c(options_.shape, full, dir + "/model.bin"));
  if (!corpus_.chars.empty()) return write_char_tokenizer(corpus_.chars, dir + "/tokenizer.bin");
  if (tokenizer_source.empty()) return Status::Ok();
  // Whole or not at all, as model.bin beside it: copy_file would truncate
  // the old file and fill it in place, which a kill mid-copy leaves short.
  auto source = MappedFile::open(tokenizer_source);
  if (!source.ok()) return source.status().with_context("export: the tokenizer");
  return write_file_atomically(dir + "/tokenizer.bin", std::string_view((*source)->data(), (*source)->size()));
}

}  // namespace tandem::train
