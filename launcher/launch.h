// `tandem launch`: one worker per node, supervised until every one has
// finished. The pieces, each in its own file:
//   node_command.cc  how a node's process starts: a local child, or the real
//                    OpenSSH client (BatchMode, the user's host key checking)
//   preflight.cc     every node checked at once before anything starts
//   supervisor.cc    the workers' stdio: logs prefixed [rank N host],
//                    heartbeats, failures, signals, stopping
// The launcher exits 0 only when every worker exited 0; otherwise non-zero,
// naming the first rank that failed, its host and the cause.
#pragma once

#include <string>
#include <vector>

#include "launcher/config.h"
#include "launcher/process.h"
#include "runtime/status.h"

namespace tandem::launcher {

// What a node runs, as a process the launcher spawns: `tandem <args...>` on
// the node, through ssh unless the node is local.
struct NodeCommandContext {
  std::string self_binary;  // the launcher's own binary (absolute)
  std::string self_workdir; // the launcher's working directory (absolute)
};
ProcessSpec node_command(const RunConfig& config, int rank, const NodeCommandContext& context,
                         const std::vector<std::string>& tandem_args);
// The ssh client's argv for node `rank` (for tests and the launcher log).
std::vector<std::string> ssh_argv(const RunConfig& config, int rank, const std::string& remote_command);
// POSIX shell single-quoting.
std::string shell_quote(const std::string& word);

// Reachable, the same tandem version, the model present and the same size on
// every node: all nodes at once, all problems in one FailedPrecondition.
Status preflight(const RunConfig& config, const NodeCommandContext& context, std::FILE* log);

struct WorkerOutcome {
  int rank = 0;
  std::string host;
  std::string status;  // "exit 0", "killed by SIGKILL", "not started"
  int exit_code = -1;  // -1 unless it exited
  std::string cause;   // why it failed, or why it was stopped
};

struct SupervisorResult {
  bool ok = false;
  std::string cause;  // the first failure: "rank 1 (10.0.0.2): ..."
  int exit_code = 0;  // what `tandem launch` exits with
  std::vector<WorkerOutcome> workers;
};

struct SupervisorFiles {
  std::string run_dir;  // rank-N.log and endpoint are written here
  std::FILE* launcher_log = nullptr;
};

// Starts every worker with the header (token + resolved config), then
// watches them to the end.
SupervisorResult supervise(const RunConfig& config, const std::string& run_id, const std::string& token,
                           const NodeCommandContext& context, const SupervisorFiles& files);

}  // namespace tandem::launcher
