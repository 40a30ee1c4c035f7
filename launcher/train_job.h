// `job: train`: every rank runs the training loop of runtime/train/trainer.h
// over the job's host communicator (the data-parallel or tensor-parallel
// group). Rank 0 logs a progress line every train.log_interval steps and
// reports each to the launcher as a `train` record, which the supervisor
// appends to <run dir>/loss.csv and draws as loss.png when the job ends.
// At the end rank 0 exports the model to train.out_dir/model/ (model.bin +
// tokenizer.bin), which `tandem generate` runs.
#pragma once

#include "collectives/communicator.h"
#include "launcher/config.h"
#include "launcher/worker_link.h"
#include "runtime/status.h"
#include "runtime/train/trainer.h"

namespace tandem::launcher {

// The trainer's options for `rank` from the config (train.* and parallel.dp / tp).
train::TrainerOptions trainer_options(const RunConfig& config, int rank, int64_t vocab_size);

// train.overlap: auto overlaps where rank's host has a hardware thread to
// spare for the exchange beside every rank's compute threads there
// (hardware_threads: the CPUs rank may use; a rank with cpu_affinity counts
// only itself on them).
bool overlap_exchange(const RunConfig& config, int rank, unsigned hardware_threads);

// The `train` record rank 0 sends per logged step: its loss.csv line
// (launcher/loss_curve.h), which the supervisor parses back and appends.
std::string train_record(const train::StepReport& report, double tokens_per_s);

// Trains to train.iters (or until the launcher asks to stop: then Ok).
Status run_train_job(const RunConfig& config, int rank, collectives::Communicator& comm, LauncherLink& link);

}  // namespace tandem::launcher
