#include "tests/unit/launch_test_util.h"

#include <sstream>
#include <thread>

namespace tandem::testing {

std::vector<std::string> LaunchRun::argv(const std::vector<std::string>& sets,
                                         const std::vector<std::string>& prefix) const {
  std::vector<std::string> a = prefix;
  a.insert(a.end(), {tandem_binary(), "launch", "--run-id", run_id, "--set", "run_dir=" + dir.path(), "--set",
                     "model.path=" + bundled_model_dir()});
  for (const std::string& s : sets) a.insert(a.end(), {"--set", s});
  // Workers run the binary the tests run (in a cross build, the wrapper that
  // hands it to the emulator) unless a test names another.
  // A test that replaces cluster.nodes gives as many nodes as it lists hosts.
  int nodes = 2;
  for (const std::string& s : sets) {
    if (s.rfind("cluster.nodes=", 0) != 0) continue;
    nodes = 0;
    for (size_t at = s.find("host:"); at != std::string::npos; at = s.find("host:", at + 1)) ++nodes;
  }
  for (int i = 0; i < nodes; ++i) {
    const std::string node = "cluster.nodes[" + std::to_string(i) + "].tandem";
    bool named = false;
    for (const std::string& s : sets) named = named || s.rfind(node + "=", 0) == 0;
    if (!named) a.insert(a.end(), {"--set", node + "=" + tandem_binary()});
  }
  return a;
}

bool LaunchRun::wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) const {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    try {
      if (read_file(run_dir() + "/launcher.log").find(needle) != std::string::npos) return true;
    } catch (const std::exception&) {
      // not created yet
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

namespace {
std::vector<int> pgrep(const std::string& pattern) {
  const CommandResult r = run_command({"pgrep", "-f", "--", pattern}, std::chrono::seconds(10));
  std::vector<int> pids;
  std::istringstream in(r.out);
  for (int pid; in >> pid;) pids.push_back(pid);
  return pids;
}
}  // namespace

// The job id ends a worker's command line: anchored, run "story" does not
// match the workers of a concurrent run "story-pp2". Ids are [a-z0-9-].
std::vector<int> LaunchRun::worker_pids() const { return pgrep("--job " + run_id + "$"); }
std::vector<int> LaunchRun::worker_pids(int rank) const {
  return pgrep("worker --rank " + std::to_string(rank) + " --job " + run_id + "$");
}

std::string rank_output(const std::string& out, int rank) {
  const std::string prefix = "[rank " + std::to_string(rank) + " ";
  std::istringstream in(out);
  std::string result;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    const size_t end = line.find("] ");
    if (end != std::string::npos) result += line.substr(end + 2) + "\n";
  }
  return result;
}

}  // namespace tandem::testing
