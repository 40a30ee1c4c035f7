// The subcommands of `tandem`. Each registers its flags on the CLI11 app and
// returns the process exit code from its run function: 0 on success, 1 with
// a message on stderr naming the cause otherwise.
#pragma once

#include <CLI/CLI.hpp>

#include "runtime/status.h"

namespace tandem::cli {

void add_generate_command(CLI::App& app);
void add_bench_command(CLI::App& app);
// `bench collectives`, under the `bench` subcommand.
void add_bench_collectives_command(CLI::App& bench);
void add_bench_batch_command(CLI::App& bench);
void add_bench_kernels_command(CLI::App& bench);
void add_info_command(CLI::App& app);
// `config show`: the resolved run config (launcher/config.h).
void add_config_command(CLI::App& app);
// `model synth`: seeded checkpoints of any shape.
void add_model_command(CLI::App& app);
// `quantize IN OUT --type T`: any model as a quantized GGUF file.
void add_quantize_command(CLI::App& app);
// `plan`: each node's memory for a run (sharding/memory_plan.h); exits 0
// when it fits, 1 when not, 2 when no plan can be made.
void add_plan_command(CLI::App& app);
// `launch`: start and supervise a job's workers (launcher/launch.h).
void add_launch_command(CLI::App& app);
// Internal, run by `launch` on each node: `worker` and `preflight`.
void add_worker_command(CLI::App& app);
void add_preflight_command(CLI::App& app);
// `ctl`: the control endpoint's client (built with the control plane only).
void add_ctl_command(CLI::App& app);

// Prints "tandem: error: <status>" to stderr and returns exit code 1.
int report_error(const Status& status);

// The exit code the subcommand that ran chose (callbacks store it here).
void set_exit_code(int code);
int exit_code();
// A subcommand that promises a fixed exit code for command-line errors
// (`ctl`: 2) sets it as its parsing starts; 0 keeps CLI11's codes.
void set_usage_exit_code(int code);
int usage_exit_code();

}  // namespace tandem::cli
