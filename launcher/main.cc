// tandem: one machine out of two DGX Sparks. Entry point of the command line.
#include <csignal>
#include <cstdio>

#include "launcher/commands.h"

namespace tandem::cli {
namespace {
int g_exit_code = 0;
int g_usage_exit_code = 0;
}  // namespace

void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }
void set_usage_exit_code(int code) { g_usage_exit_code = code; }
int usage_exit_code() { return g_usage_exit_code; }

int report_error(const Status& status) {
  std::fprintf(stderr, "tandem: error: %s\n", status.to_string().c_str());
  return 1;
}

}  // namespace tandem::cli

int main(int argc, char** argv) {
  // Inherited as SIG_IGN (it survives exec), SIGCHLD would have the kernel
  // reap the workers and checks this process starts before it learns how
  // they exited.
  std::signal(SIGCHLD, SIG_DFL);
  CLI::App app{"tandem: LLM inference and training across two machines"};
  app.set_version_flag("--version", "tandem " TANDEM_VERSION);
  app.require_subcommand(1);
  tandem::cli::add_generate_command(app);
  tandem::cli::add_bench_command(app);
  tandem::cli::add_info_command(app);
  tandem::cli::add_config_command(app);
  tandem::cli::add_model_command(app);
  tandem::cli::add_quantize_command(app);
  tandem::cli::add_plan_command(app);
  tandem::cli::add_launch_command(app);
  tandem::cli::add_worker_command(app);
  tandem::cli::add_preflight_command(app);
#ifdef TANDEM_HAVE_CONTROL
  tandem::cli::add_ctl_command(app);
#endif
  try {
    app.parse(argc, argv);  // the chosen subcommand runs in its callback
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code != 0 && tandem::cli::usage_exit_code() != 0 ? tandem::cli::usage_exit_code() : code;
  }
  return tandem::cli::exit_code();
}
