// Before a job starts: every node at once runs `tandem preflight` (through
// ssh when remote) and answers with one JSON line; every problem found is
// reported together, so a user fixes them in one round.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "launcher/cluster.h"
#include "launcher/launch.h"
#include "runtime/deadline.h"

namespace tandem::launcher {
namespace {

struct Probe {
  Process process;
  std::string out, err;
  bool spawned = false;
  std::string spawn_error;
};

void drain(int fd, std::string& into) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return;
    if (into.size() < (1 << 20)) into.append(buf, static_cast<size_t>(n));
  }
}

std::string last_line(const std::string& text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// Runs every probe to its end or the deadline.
void run_probes(std::vector<Probe>& probes, Deadline deadline) {
  for (;;) {
    std::vector<pollfd> fds;
    bool running = false;
    for (Probe& p : probes) {
      if (!p.spawned) continue;
      if (!p.process.try_wait()) running = true;
      fds.push_back({p.process.stdout_fd(), POLLIN, 0});
      fds.push_back({p.process.stderr_fd(), POLLIN, 0});
    }
    if (!running || expired(deadline)) break;
    ::poll(fds.data(), fds.size(), 50);
    for (Probe& p : probes) {
      if (!p.spawned) continue;
      drain(p.process.stdout_fd(), p.out);
      drain(p.process.stderr_fd(), p.err);
    }
  }
  for (Probe& p : probes) {
    if (!p.spawned) continue;
    drain(p.process.stdout_fd(), p.out);
    drain(p.process.stderr_fd(), p.err);
  }
}

}  // namespace

Status preflight(const RunConfig& config, const NodeCommandContext& context, std::FILE* log) {
  const size_t n = config.cluster.nodes.size();
  std::vector<Probe> probes(n);
  for (size_t r = 0; r < n; ++r) {
    std::vector<std::string> args = {"preflight", "--model", config.model.path, "--tp",
                                     std::to_string(config.parallel.tp), "--pp", std::to_string(config.parallel.pp)};
    if (config.job == JobKind::kTrain) args = {"preflight", "--data", config.train.data};
    if (config.backend.compute == ComputeBackend::kCuda) args.insert(args.end(), {"--backend", "cuda"});
    const std::string& cpus = config.cluster.nodes[r].cpu_affinity;
    if (!cpus.empty()) args.insert(args.end(), {"--cpus", cpus});
    const ProcessSpec spec = node_command(config, static_cast<int>(r), context, args);
    auto process = Process::spawn(spec);
    if (!process.ok()) {
      probes[r].spawn_error = process.status().message();
      continue;
    }
    probes[r].process = std::move(process).value();
    probes[r].process.close_stdin();
    probes[r].spawned = true;
  }
  const auto timeout = seconds_to_ms(config.launch.preflight_timeout_s);
  run_probes(probes, deadline_after(timeout));

  std::vector<std::string> problems;
  bool plan_refused = false;
  std::vector<nlohmann::json> answers(n);
  for (size_t r = 0; r < n; ++r) {
    Probe& p = probes[r];
    const NodeConfig& node = config.cluster.nodes[r];
    const std::string who = "rank " + std::to_string(r) + " (" + node.host + "): ";
    if (!p.spawned) {
      problems.push_back(who + "cannot start the probe: " + p.spawn_error);
      continue;
    }
    const std::optional<int> status = p.process.try_wait();
    if (!status) {
      p.process.kill_group(SIGKILL);
      problems.push_back(who + "no answer in " + std::to_string(static_cast<int>(config.launch.preflight_timeout_s)) +
                         " s (host unreachable or hanging?)");
      continue;
    }
    const std::string err = last_line(p.err);
    const std::string code = describe_wait_status(*status);
    if (code == "exit 255" && !is_local_host(node.host)) {
      problems.push_back(who + "ssh failed: " + (err.empty() ? "exit 255" : err));
      continue;
    }
    if (code == "exit 127" || code == "exit 126") {
      problems.push_back(who + "cannot run the tandem binary" + (err.empty() ? "" : ": " + err));
      continue;
    }
    nlohmann::json answer = nlohmann::json::parse(last_line(p.out), nullptr, /*allow_exceptions=*/false);
    if (!answer.is_object() || !answer.contains("version")) {
      problems.push_back(who + "the probe gave no answer (" + code + (err.empty() ? "" : ": " + err) + ")");
      continue;
    }
    answers[r] = answer;
    if (answer.value("version", "") != TANDEM_VERSION) {
      problems.push_back(who + "tandem " + answer.value("version", "?") + " there, " + TANDEM_VERSION + " here");
    }
    if (const std::string e = answer.value("model_error", ""); !e.empty()) problems.push_back(who + e);
    if (const std::string e = answer.value("backend_error", ""); !e.empty()) problems.push_back(who + e);
    if (const std::string e = answer.value("affinity_error", ""); !e.empty())
      problems.push_back(who + "cluster.nodes[" + std::to_string(r) + "].cpu_affinity: " + e);
    // The same model refuses the same split everywhere: said once.
    if (const std::string e = answer.value("plan_error", ""); !e.empty() && !plan_refused) {
      problems.push_back(who + e);
      plan_refused = true;
    }
  }
  // Same model everywhere: sizes compared with the first node that has one.
  for (size_t r = 1; r < n; ++r) {
    if (!answers[0].is_object() || !answers[r].is_object()) continue;
    const auto a = answers[0].value("model_bytes", int64_t{-1});
    const auto b = answers[r].value("model_bytes", int64_t{-1});
    if (a >= 0 && b >= 0 && a != b) {
      const std::string what = config.job == JobKind::kTrain ? "train.data" : "the model";
      problems.push_back("rank " + std::to_string(r) + " (" + config.cluster.nodes[r].host + "): " + what + " is " +
                         std::to_string(b) + " bytes there but " + std::to_string(a) + " bytes on rank 0");
    }
  }
  for (size_t r = 0; r < n; ++r) {
    if (answers[r].is_object()) {
      std::fprintf(log, "preflight: rank %zu (%s): %s\n", r, config.cluster.nodes[r].host.c_str(),
                   answers[r].dump().c_str());
    }
  }
  if (problems.empty()) return Status::Ok();
  std::string message = "preflight found " + std::to_string(problems.size()) + " problem" +
                        (problems.size() == 1 ? "" : "s") + ":";
  for (const std::string& p : problems) message += "\n  " + p;
  return FailedPrecondition(message);
}

}  // namespace tandem::launcher
