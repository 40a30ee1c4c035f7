#include "launcher/train_job.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "collectives/train_comm.h"
#include "launcher/cluster.h"
#include "launcher/loss_curve.h"
#include "runtime/cpu_affinity.h"
#include "runtime/thread_pool.h"

namespace tandem::launcher {
namespace {

using Clock = std::chrono::steady_clock;

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%" PRId64 "h%02" PRId64 "m", s / 3600, (s / 60) % 60);
  } else {
    std::snprintf(text, sizeof text, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
  }
  return text;
}

std::string format_number(double v, const char* format) {
  char text[64];
  std::snprintf(text, sizeof text, format, v);
  return text;
}

Result<train::TokenCorpus> load_corpus(const TrainConfig& t) {
  if (t.tokenizer == "char") return train::load_char_corpus(t.data);
  return train::load_tokenized_corpus(t.data, t.tokenizer);
}

// Rank 0's progress line: the step, its loss, validation when measured, the
// learning rate, throughput over the interval, the share of step time spent
// waiting on exchanges, and the time left at that pace.
std::string progress_line(const train::StepReport& r, int64_t iters, double tokens_per_s, double comm_share,
                          double eta_seconds) {
  std::string line = "step " + std::to_string(r.step) + "/" + std::to_string(iters) + " | loss " +
                     format_number(r.train_loss, "%.4f");
  if (!std::isnan(r.val_loss)) line += " | val " + format_number(r.val_loss, "%.4f");
  line += " | lr " + format_number(r.lr, "%.2e") + " | " + format_number(tokens_per_s, "%.0f") + " tok/s | comm " +
          format_number(100.0 * comm_share, "%.1f") + "% | ETA " + format_duration(eta_seconds);
  return line;
}

// TANDEM_FAULT_INJECT="kill:RANK:POINT:N": rank RANK SIGKILLs itself at POINT
// of step N: `after-step` (the step done), `in-checkpoint` (its shard of the
// step's checkpoint written, the ranks not yet agreed to commit it),
// `before-commit` (agreed, this rank not yet committed). For the crash tests
// (tests/unit/launch_train_test.cc); unset, nothing happens.
struct Fault {
  std::string point;
  int64_t step = -1;
};

Result<std::optional<Fault>> parse_fault(const char* text, int rank) {
  if (text == nullptr || *text == '\0') return std::optional<Fault>();
  const std::string s = text;
  int fault_rank = -1;
  long long step = -1;
  char point[32] = {};
  const std::string name = std::sscanf(s.c_str(), "kill:%d:%31[a-z-]:%lld", &fault_rank, point, &step) == 3 ? point : "";
  if ((name != "after-step" && name != "in-checkpoint" && name != "before-commit") || step < 0) {
    return InvalidArgument("TANDEM_FAULT_INJECT=" + s +
                           ": expected kill:RANK:after-step:N, kill:RANK:in-checkpoint:N or kill:RANK:before-commit:N");
  }
  if (fault_rank != rank) return std::optional<Fault>();
  return std::optional<Fault>(Fault{name, step});
}

[[noreturn]] void kill_self(const char* where, int64_t step) {
  std::fprintf(stderr, "tandem: TANDEM_FAULT_INJECT: killing this worker %s %" PRId64 "\n", where, step);
  std::fflush(stderr);
  ::raise(SIGKILL);
  std::abort();
}

}  // namespace

bool overlap_exchange(const RunConfig& config, int rank, unsigned hardware_threads) {
  if (config.train.overlap != Overlap::kAuto) return config.train.overlap == Overlap::kOn;
  const auto& nodes = config.cluster.nodes;
  const std::string& host = nodes[static_cast<size_t>(rank)].host;
  // A rank pinned to its own CPUs (cpu_affinity) shares them with no other.
  const int64_t ranks_here = !nodes[static_cast<size_t>(rank)].cpu_affinity.empty()
                                 ? 1
                                 : std::count_if(nodes.begin(), nodes.end(), [&](const NodeConfig& n) {
                                     return n.host == host || (is_local_host(n.host) && is_local_host(host));
                                   });
  const int64_t threads = config.backend.threads > 0 ? config.backend.threads : hardware_threads;
  return ranks_here * (threads + 1) <= static_cast<int64_t>(hardware_threads);
}

train::TrainerOptions trainer_options(const RunConfig& config, int rank, int64_t vocab_size) {
  const TrainConfig& t = config.train;
  train::TrainerOptions o;
  o.shape.dim = t.dim;
  o.shape.n_layers = t.layers;
  o.shape.n_heads = t.heads;
  o.shape.n_kv_heads = t.kv_heads;
  o.shape.hidden_dim = t.hidden_dim;
  o.shape.vocab_size = vocab_size;
  o.shape.seq_len = t.block_size;
  o.dp = config.parallel.dp;
  o.tp = config.parallel.tp;
  o.batch_size = t.batch_size;
  o.micro_batch = t.micro_batch;
  o.iters = t.iters;
  o.lr.max_lr = t.lr;
  o.lr.min_lr = t.min_lr;
  o.lr.warmup_steps = t.warmup_iters;
  o.lr.decay_steps = t.lr_decay_iters > 0 ? t.lr_decay_iters : t.iters;
  o.adamw.beta1 = t.beta1;
  o.adamw.beta2 = t.beta2;
  o.adamw.weight_decay = t.weight_decay;
  o.grad_clip = t.grad_clip;
  o.seed = static_cast<uint64_t>(t.seed);
  o.eval_interval = t.eval_interval;
  o.eval_batches = t.eval_batches;
  o.hash_check_interval = t.hash_check_interval;
  o.checkpoint_interval = t.checkpoint_interval;
  o.out_dir = t.out_dir;
  o.resume = t.resume;
  o.bucket_bytes = static_cast<size_t>(t.bucket_mb * 1024 * 1024);
  o.overlap = overlap_exchange(config, rank, static_cast<unsigned>(usable_cpu_count()));
  return o;
}

std::string train_record(const train::StepReport& r, double tokens_per_s) {
  return loss_csv_line(LossPoint{r.step, r.train_loss, r.val_loss, r.lr, tokens_per_s});
}

namespace {

// How long a rank whose exchange failed waits for the launcher's stop before
// calling the failure its own: the stop reaches every rank within
// milliseconds of the first.
constexpr std::chrono::seconds kStopGrace{2};

// A stop from the launcher (a signal, another rank's failure) must not leave
// this rank inside an exchange until its deadline: the watcher aborts the
// communicator, and the abort that follows is the stop, not an error.
class StopWatcher {
 public:
  StopWatcher(LauncherLink& link, collectives::Communicator& comm)
      : thread_([this, &link, &comm] {
          std::unique_lock lock(mu_);
          while (!done_) {
            if (link.stop_requested()) {
              comm.abort("stopped by the launcher: " + link.stop_reason());
              return;
            }
            cv_.wait_for(lock, std::chrono::milliseconds(50));
          }
        }) {}
  ~StopWatcher() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// The training itself; run_train_job adds the stop handling.
Status train(const RunConfig& config, int rank, collectives::Communicator& comm, LauncherLink& link) {
  const TrainConfig& t = config.train;
  TANDEM_ASSIGN_OR_RETURN(const train::TokenCorpus corpus, load_corpus(t));
  train::TrainerOptions options = trainer_options(config, rank, corpus.vocab_size);
  TANDEM_ASSIGN_OR_RETURN(const std::optional<Fault> fault, parse_fault(std::getenv("TANDEM_FAULT_INJECT"), rank));
  if (fault && fault->point == "in-checkpoint") {
    options.after_shard_written = [step = fault->step](int64_t s) {
      if (s == step) kill_self("with its checkpoint shard written, not yet agreed, at step", s);
    };
  } else if (fault && fault->point == "before-commit") {
    options.before_commit = [step = fault->step](int64_t s) {
      if (s == step) kill_self("with the checkpoint agreed, before its commit, at step", s);
    };
  }
  TANDEM_ASSIGN_OR_RETURN(auto train_comm, collectives::make_train_comm(
                                               comm, std::chrono::milliseconds(static_cast<int64_t>(
                                                         config.launch.step_timeout_s * 1000))));
  ThreadPool pool(config.backend.threads);
  TANDEM_ASSIGN_OR_RETURN(auto trainer, train::Trainer::create(options, corpus, rank, train_comm.get(), &pool));
  TANDEM_ASSIGN_OR_RETURN(const int64_t first_step, trainer->start());
  const bool leader = rank == 0;
  if (leader) {
    const size_t params = trainer->model().params().size() * static_cast<size_t>(options.tp);
    link.log("tandem: training " + format_number(static_cast<double>(params) / 1e6, "%.2f") + "M parameters on " +
             corpus.describe() + "; dp=" + std::to_string(options.dp) + " tp=" + std::to_string(options.tp) + ", " +
             std::to_string(pool.size()) + " thread(s) per rank" +
             (options.dp > 1 ? (trainer->overlapping() ? ", gradient exchange beside the backward; " : ", gradient exchange after the backward; ")
                             : std::string("; ")) +
             (first_step > 0 ? "resumed at step " + std::to_string(first_step) : std::string("from scratch")) + "\n");
  }
  link.record("ready");

  double interval_seconds = 0, interval_comm = 0;
  int64_t interval_tokens = 0;
  const auto started = Clock::now();
  while (trainer->step() < options.iters) {
    if (link.stop_requested()) return Status::Ok();
    TANDEM_ASSIGN_OR_RETURN(const train::StepReport report, trainer->train_step());
    if (fault && fault->point == "after-step" && report.step == fault->step) kill_self("after step", report.step);
    interval_seconds += report.step_seconds;
    interval_comm += report.comm_seconds;
    interval_tokens += report.tokens;
    const bool last = report.step >= options.iters;
    if (!leader || !(last || report.step % t.log_interval == 0 || !std::isnan(report.val_loss))) continue;
    const double tokens_per_s = interval_seconds > 0 ? static_cast<double>(interval_tokens) / interval_seconds : 0;
    const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    const double per_step = elapsed / static_cast<double>(report.step - first_step);
    link.log("tandem: " + progress_line(report, options.iters, tokens_per_s,
                                        interval_seconds > 0 ? interval_comm / interval_seconds : 0,
                                        per_step * static_cast<double>(options.iters - report.step)) +
             "\n");
    link.record("train", {train_record(report, tokens_per_s)});
    interval_seconds = interval_comm = 0;
    interval_tokens = 0;
  }
  const std::string model_dir = t.out_dir + "/model";
  TANDEM_RETURN_IF_ERROR(trainer->export_model(model_dir, t.tokenizer == "char" ? std::string() : t.tokenizer));
  if (leader) link.log("tandem: model written to " + model_dir + " (tandem generate --model " + model_dir + ")\n");
  return Status::Ok();
}

}  // namespace

Status run_train_job(const RunConfig& config, int rank, collectives::Communicator& comm, LauncherLink& link) {
  Status s;
  {
    StopWatcher watcher(link, comm);
    s = train(config, rank, comm, link);
  }
  // The launcher stops every rank at once, but a peer that stops first
  // closes its endpoints, and this rank's exchange can fail on that before
  // its own stop is read: a failure that is the stop's doing, not an error.
  // A peer that really failed is followed by a stop too ("rank N failed"),
  // and the launcher reports that rank's error.
  const bool peer_gone = s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kAborted;
  if (peer_gone && !link.stop_requested()) link.wait_stop(deadline_after(kStopGrace));
  if (link.stop_requested()) {
    if (s.ok()) {
      std::fprintf(stderr, "tandem: stopping: %s\n", link.stop_reason().c_str());
    } else {
      std::fprintf(stderr, "tandem: stopping: %s (this rank's exchange had failed first: %s)\n",
                   link.stop_reason().c_str(), s.to_string().c_str());
    }
    return Status::Ok();
  }
  return s;
}

}  // namespace tandem::launcher
