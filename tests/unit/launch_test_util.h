// Running `tandem launch` in the tests: a run directory of the test's own,
// waiting on what the launcher logs, finding and counting a job's workers.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "tests/unit/process_util.h"
#include "tests/unit/test_paths.h"

namespace tandem::testing {

struct LaunchRun {
  TempDir dir;
  std::string run_id;

  explicit LaunchRun(std::string id) : run_id(std::move(id)) {}
  std::string run_dir() const { return dir.path() + "/" + run_id; }
  // `prefix` (e.g. ip netns exec A) + tandem launch with the bundled model,
  // this run's directory and id, then `sets` as --set overrides; both nodes
  // run tandem_binary() unless `sets` names their binary.
  std::vector<std::string> argv(const std::vector<std::string>& sets,
                                const std::vector<std::string>& prefix = {}) const;
  // Polls run_dir/launcher.log until it holds `needle`.
  bool wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) const;
  // Processes whose command line names this job (`--job <run id>`).
  std::vector<int> worker_pids() const;
  std::vector<int> worker_pids(int rank) const;
};

// stdout of a launch with the "[rank N host] " prefixes of `rank` stripped
// and other lines dropped.
std::string rank_output(const std::string& out, int rank);

}  // namespace tandem::testing
