// `tandem launch [CONFIG] [--set KEY=VALUE ...]`: run a job on its nodes.
// Resolve the config, make the run directory (resolved config, token,
// logs, summary), check every node, start and supervise the workers.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "launcher/cluster.h"
#include "launcher/commands.h"
#include "launcher/launch.h"
#include "runtime/atomic_file.h"

namespace tandem::cli {
namespace {

using namespace launcher;

struct LaunchFlags {
  std::string config;
  std::vector<std::string> overrides;
  std::string run_id;
  bool preflight = true;
};

// 256 bits from the OS's random source, hex: the job's secret.
std::string make_token() {
  std::random_device random;
  std::string token;
  char hex[9];
  for (int i = 0; i < 8; ++i) {
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(random()));
    token += hex;
  }
  return token;
}

Status write_private_file(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return TANDEM_ERRNO("creating " + path);
  Status s = Status::Ok();
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) s = TANDEM_ERRNO("writing " + path);
  ::close(fd);
  return s;
}

Status check_launchable(const RunConfig& config) {
  if (config.job == JobKind::kBench) {
    return Unimplemented("job: bench: this build launches generate, serve and train jobs (benchmarks: `tandem bench`)");
  }
  const auto& nodes = config.cluster.nodes;
  if (!all_nodes_local(config) && is_local_host(nodes[0].host) && nodes[0].data_address.empty()) {
    return InvalidArgument(
        "cluster.nodes[0].data_address: rank 0 runs on this machine but other ranks are remote: set the "
        "address they reach it at (the data link's address)");
  }
  return Status::Ok();
}

// Causes quote workers' stderr, cut at a byte count and in whatever encoding
// the worker wrote: bytes that are not UTF-8 become U+FFFD (nlohmann's
// strict default would throw from dump() and end the launcher instead).
Status write_summary(const std::string& dir, const std::string& run_id, const SupervisorResult& r, double wall) {
  nlohmann::json summary;
  summary["run_id"] = run_id;
  summary["ok"] = r.ok;
  summary["exit_code"] = r.exit_code;
  summary["cause"] = r.cause;
  summary["wall_seconds"] = wall;
  summary["ranks"] = nlohmann::json::array();
  for (const WorkerOutcome& w : r.workers) {
    summary["ranks"].push_back(
        {{"rank", w.rank}, {"host", w.host}, {"status", w.status}, {"exit_code", w.exit_code}, {"cause", w.cause}});
  }
  return write_file_atomically(dir + "/summary.json",
                               summary.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

int run_launch(const LaunchFlags& flags) {
  const auto started = std::chrono::steady_clock::now();
  auto config = load_config(flags.config, flags.overrides);
  if (!config.ok()) return report_error(config.status());
  if (Status s = check_launchable(*config); !s.ok()) return report_error(s);
  std::error_code ec;
  NodeCommandContext context;
  context.self_binary = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  context.self_workdir = std::filesystem::current_path(ec).string();
  if (context.self_binary.empty()) return report_error(Internal("cannot find this binary's path (/proc/self/exe)"));

  auto dir = create_run_directory(*config, flags.run_id);
  if (!dir.ok()) return report_error(dir.status());
  const std::string run_id = std::filesystem::path(*dir).filename().string();
  const std::string token = make_token();
  if (Status s = write_private_file(*dir + "/token", token + "\n"); !s.ok()) return report_error(s);
  std::FILE* log = std::fopen((*dir + "/launcher.log").c_str(), "we");
  if (!log) return report_error(TANDEM_ERRNO("creating " + *dir + "/launcher.log"));
  std::fprintf(stderr, "tandem: run %s: %zu workers, logs in %s\n", run_id.c_str(), config->cluster.nodes.size(),
               dir->c_str());

  SupervisorResult result;
  Status checked = flags.preflight ? preflight(*config, context, log) : Status::Ok();
  if (!checked.ok()) {
    result = {false, checked.message(), 1, {}};
  } else {
    SupervisorFiles files{*dir, log};
    result = supervise(*config, run_id, token, context, files);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (Status s = write_summary(*dir, run_id, result, wall); !s.ok())
    std::fprintf(stderr, "tandem: warning: %s\n", s.to_string().c_str());
  if (result.ok) {
    std::fprintf(log, "job finished: every rank exited 0 in %.1f s\n", wall);
    std::fprintf(stderr, "tandem: job %s finished: %zu ranks exited 0 in %.1f s\n", run_id.c_str(),
                 result.workers.size(), wall);
  } else {
    std::fprintf(log, "job failed: %s\n", result.cause.c_str());
    std::fprintf(stderr, "tandem: error: job %s failed: %s\n", run_id.c_str(), result.cause.c_str());
  }
  std::fclose(log);
  return result.exit_code;
}

}  // namespace

void add_launch_command(CLI::App& app) {
  auto flags = std::make_shared<LaunchFlags>();
  CLI::App* cmd = app.add_subcommand("launch", "Run a job: one worker per node of the config, supervised");
  cmd->add_option("config", flags->config, "Run config (YAML); default: the embedded configs/local.yaml");
  // One value per --set, so `--set a=1 x.yaml` leaves x.yaml the config (as `config show` and `plan`).
  cmd->add_option("--set", flags->overrides, "Override a key: KEY.PATH=VALUE (repeatable)")->allow_extra_args(false);
  cmd->add_option("--run-id", flags->run_id, "Name of the run directory under run_dir (default: time + random)");
  cmd->add_flag("!--no-preflight", flags->preflight, "Skip the checks of every node before the start");
  cmd->callback([flags] { set_exit_code(run_launch(*flags)); });
}

}  // namespace tandem::cli
