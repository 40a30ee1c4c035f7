// `tandem worker`: one rank of a launched job. Internal: `tandem launch`
// starts it (as a child or through ssh) and speaks to it over its stdio
// (launcher/worker_protocol.h); the job secret and the resolved config come
// in on stdin, never on the command line.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "collectives/collectives.h"
#include "launcher/cluster.h"
#include "launcher/commands.h"
#include "launcher/fd_io.h"
#include "launcher/train_job.h"
#include "launcher/worker_job.h"
#include "launcher/worker_link.h"
#include "launcher/worker_model.h"
#include "launcher/worker_protocol.h"
#include "runtime/cpu_affinity.h"
#include "runtime/deadline.h"
#include "runtime/loaded_model.h"

namespace tandem::cli {
namespace {

using launcher::LauncherLink;
using launcher::RunConfig;

// What the config says a worker's environment holds: `env`, and the data
// link's interface for UCX and NCCL unless `env` names them itself.
void apply_environment(const RunConfig& config, int rank) {
  for (const auto& [name, value] : config.env) ::setenv(name.c_str(), value.c_str(), 1);
  const std::string& iface = config.cluster.nodes[rank].data_interface;
  if (!iface.empty()) {
    if (!config.env.contains("UCX_NET_DEVICES")) ::setenv("UCX_NET_DEVICES", iface.c_str(), 1);
    if (!config.env.contains("NCCL_SOCKET_IFNAME")) ::setenv("NCCL_SOCKET_IFNAME", iface.c_str(), 1);
  }
}

// cluster.nodes[rank].cpu_affinity, checked against the CPUs this host has.
Status pin_to_configured_cpus(const RunConfig& config, int rank) {
  const std::string& list = config.cluster.nodes[rank].cpu_affinity;
  if (list.empty()) return Status::Ok();
  const std::string key = "rank " + std::to_string(rank) + ": cluster.nodes[" + std::to_string(rank) + "].cpu_affinity";
  auto cpus = parse_cpu_list(list);
  if (!cpus.ok()) return cpus.status().with_context(key);
  TANDEM_RETURN_IF_ERROR(pin_process_to_cpus(*cpus).with_context(key));
  std::fprintf(stderr, "tandem: rank %d runs on CPUs %s\n", rank, format_cpu_list(allowed_cpus()).c_str());
  return Status::Ok();
}

Status check_supported(const RunConfig& config) {
  if (config.job == launcher::JobKind::kTrain) return Status::Ok();  // the model is train.*, built in memory
  return launcher::weight_dtype_of(config.model.dtype).status();
}

Result<collectives::JobCommunicators> join(const RunConfig& config, int rank, const std::string& job,
                                                        const std::string& token, LauncherLink& link) {
  const Deadline deadline = deadline_after(seconds_to_ms(config.launch.startup_timeout_s));
  collectives::CommConfig comm;
  comm.backend = std::string(to_string(config.backend.comm));
  comm.bootstrap.rank = rank;
  comm.bootstrap.world_size = static_cast<int>(config.cluster.nodes.size());
  comm.bootstrap.job_id = job + ":" + token;
  if (rank == 0) {
    comm.bootstrap.coordinator_host = launcher::coordinator_bind_address(config);
    comm.bootstrap.coordinator_port = 0;
    comm.bootstrap.on_listening = [&link](uint16_t port) { link.record("coordinator", {std::to_string(port)}); };
  } else {
    TANDEM_ASSIGN_OR_RETURN(launcher::Endpoint coordinator, link.wait_coordinator(deadline));
    comm.bootstrap.coordinator_host = coordinator.host;
    comm.bootstrap.coordinator_port = static_cast<uint16_t>(coordinator.port);
  }
  return collectives::make_job_communicators(comm, deadline);
}

int run_worker(int rank, const std::string& job) {
  ::signal(SIGPIPE, SIG_IGN);
  auto reader = std::make_unique<launcher::LineReader>(0, "the launcher channel (stdin)");
  auto header = launcher::read_worker_header(*reader);
  if (!header.ok()) return report_error(header.status());
  auto config = launcher::parse_config(header->config_yaml, "the launcher's config");
  if (!config.ok()) return report_error(config.status());
  const int world = static_cast<int>(config->cluster.nodes.size());
  if (rank < 0 || rank >= world) {
    return report_error(InvalidArgument("--rank " + std::to_string(rank) + " outside 0.." + std::to_string(world - 1)));
  }
  apply_environment(*config, rank);
  // Before any thread starts, so the heartbeat, the pool and UCX's threads
  // inherit the mask rather than being walked while they run.
  if (Status s = pin_to_configured_cpus(*config, rank); !s.ok()) return report_error(s);
  LauncherLink link(std::move(reader), config->launch.heartbeat_interval_s, config->launch.heartbeat_timeout_s);
  const std::string where = "rank " + std::to_string(rank) + ": ";
  if (Status s = check_supported(*config); !s.ok()) return report_error(s);

  auto comms = join(*config, rank, job, header->token, link);
  if (!comms.ok()) return report_error(comms.status().with_context(where + "joining the job"));
  collectives::Communicator* const comm = comms->host.get();
  if (config->job == launcher::JobKind::kTrain) {
    if (Status s = launcher::run_train_job(*config, rank, *comm, link); !s.ok()) {
      comm->abort(s.message());
      return report_error(s.with_context(where + "training"));
    }
    link.record("exit", {"0"});
    return 0;
  }
  auto worker = launcher::load_worker_model(*config, rank, *comm, comms->device.get());
  if (!worker.ok()) {
    comm->abort(worker.status().message());
    return report_error(worker.status().with_context(where + "loading the model"));
  }
  std::fprintf(stderr, "tandem: %s\n", (*worker)->report.describe().c_str());

  launcher::WorkerContext context{*config, rank, header->token, link, *comm, (*worker)->loaded};
  Status s = rank == 0 ? launcher::run_leader(context) : launcher::run_follower(context);
  if (!s.ok()) {
    comm->abort(s.message());
    if (comms->device) comms->device->abort(s.message());
    return report_error(s);  // the launcher names the rank
  }
  // The whole process's high-water mark (mapped weights the forward touched,
  // copies, KV cache, activations, buffers): what the rank cost its node.
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::fprintf(stderr, "tandem: rank %d peak RSS %.2f GB\n", rank, static_cast<double>(usage.ru_maxrss) * 1024 / 1e9);
  link.record("exit", {"0"});
  return 0;
}

}  // namespace

void add_worker_command(CLI::App& app) {
  auto rank = std::make_shared<int>(-1);
  auto job = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("worker", "One rank of a job (started by `tandem launch`; reads stdin)");
  cmd->group("");  // internal: not listed in --help
  cmd->add_option("--rank", *rank, "This worker's rank")->required();
  cmd->add_option("--job", *job, "The run id (names the job in errors and `ps`)")->required();
  cmd->callback([rank, job] { set_exit_code(run_worker(*rank, *job)); });
}

}  // namespace tandem::cli
