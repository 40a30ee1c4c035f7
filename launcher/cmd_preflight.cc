// `tandem preflight --model PATH [--tp N --pp M] [--backend cuda]` or
// `tandem preflight --data PATH` (a training job): what `tandem launch` asks
// every node before a job starts (internal). One JSON line on stdout: this
// binary's version, the model (or training text) as this node sees it,
// whether the model takes the job's split, whether the backend can start.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "launcher/commands.h"
#include "launcher/worker_model.h"
#include "runtime/backend.h"
#include "runtime/cpu_affinity.h"
#include "runtime/formats/safetensors_checkpoint.h"
#include "runtime/model_files.h"

namespace tandem::cli {
namespace {

struct PreflightFlags {
  std::string model;
  std::string data;
  std::string backend;
  std::string cpus;  // the node's cpu_affinity; empty: not pinned
  int tp = 0;  // 0: no split to check
  int pp = 1;
};

// A Hugging Face directory's size: config.json and the weight files the
// loader reads (model.safetensors, or the index and the shards it names), so
// a README, .git or an unused consolidated.safetensors beside them may
// differ between nodes without a false alarm, and a missing shard is named.
Result<std::uintmax_t> directory_model_bytes(const std::string& dir) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<std::string> files, safetensors_checkpoint_files(dir));
  files.push_back(dir + "/config.json");
  std::uintmax_t total = 0;
  for (const std::string& file : files) {
    std::error_code ec;
    total += std::filesystem::file_size(file, ec);
    if (ec) return NotFound(file + ": " + ec.message());
  }
  return total;
}

// The file the launcher compares across nodes (the model, or a training
// job's text): where it is and its size, or why it cannot be read.
void record_file(nlohmann::json& answer, const std::string& what, const std::string& path) {
  std::error_code ec;
  std::uintmax_t bytes = 0;
  if (std::filesystem::is_directory(path, ec)) {
    Result<std::uintmax_t> sized = directory_model_bytes(path);
    if (!sized.ok()) {
      answer["model_error"] = what + ": " + sized.status().message();
      return;
    }
    bytes = *sized;
  } else {
    bytes = std::filesystem::file_size(path, ec);
  }
  if (ec) {
    answer["model_error"] = what + ": " + path + ": " + ec.message();
    return;
  }
  answer["model_path"] = std::filesystem::absolute(path, ec).string();
  answer["model_bytes"] = bytes;
}

int run_preflight(const PreflightFlags& f) {
  const std::string& model = f.model;
  const std::string& backend = f.backend;
  nlohmann::json answer;
  answer["version"] = TANDEM_VERSION;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  answer["hostname"] = host;
  std::error_code ec;
  answer["binary"] = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  answer["workdir"] = std::filesystem::current_path(ec).string();
  if (!f.data.empty()) {
    // Training builds its model in memory: the text is what must be there.
    record_file(answer, "train.data", f.data);
  } else if (auto files = resolve_model_files(model); !files.ok()) {
    answer["model_error"] = "model: " + files.status().message();
  } else {
    record_file(answer, "model", files->checkpoint);
    if (f.tp > 0) {
      Result<ModelSource> source = open_model_source(*files);
      Status planned = source.status();
      if (source.ok()) planned = launcher::plan_model(*source, f.tp, f.pp).status();
      if (!planned.ok()) answer["plan_error"] = "parallel: " + planned.message();
    }
  }
  // A GPU job: whether this node can make the backend at all (a GPU, a
  // driver new enough for the CUDA runtime tandem was built with).
  if (!backend.empty()) {
    auto kind = parse_backend_kind(backend);
    Status usable = kind.status();
    if (kind.ok()) usable = make_backend(BackendOptions{*kind, 1, 0}).status();
    if (!usable.ok()) answer["backend_error"] = "backend.compute " + backend + ": " + usable.message();
  }
  answer["cpus"] = format_cpu_list(allowed_cpus());
  // The probe is a process of its own: pinning it is the test the worker
  // will pass or fail.
  if (!f.cpus.empty()) {
    auto cpus = parse_cpu_list(f.cpus);
    Status pinned = cpus.status();
    if (cpus.ok()) pinned = pin_process_to_cpus(*cpus);
    if (!pinned.ok()) answer["affinity_error"] = pinned.message();
  }
  std::printf("%s\n", answer.dump().c_str());
  return 0;
}

}  // namespace

void add_preflight_command(CLI::App& app) {
  auto f = std::make_shared<PreflightFlags>();
  CLI::App* cmd = app.add_subcommand("preflight", "What `tandem launch` checks on a node (prints JSON)");
  cmd->group("");
  auto* model = cmd->add_option("--model", f->model, "The model path as the config names it");
  auto* data = cmd->add_option("--data", f->data, "A training job's text file, instead of a model");
  model->excludes(data);
  data->excludes(model);
  cmd->require_option(1, 0);
  cmd->add_option("--tp", f->tp, "Also check that the model takes this tensor-parallel split");
  cmd->add_option("--pp", f->pp, "... with this many pipeline stages");
  cmd->add_option("--backend", f->backend, "Also check that this compute backend can start here (cuda)");
  cmd->add_option("--cpus", f->cpus, "Also check that a worker can run on these CPUs here (0-9,12)");
  cmd->callback([f] { set_exit_code(run_preflight(*f)); });
}

}  // namespace tandem::cli
