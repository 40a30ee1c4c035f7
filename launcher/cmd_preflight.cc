// `tandem preflight --model PATH`: what `tandem launch` asks every node
// before a job starts (internal). One JSON line on stdout: this binary's
// version, and the model as this node sees it.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "launcher/commands.h"
#include "runtime/backend.h"
#include "runtime/model_files.h"

namespace tandem::cli {
namespace {

int run_preflight(const std::string& model, const std::string& backend) {
  nlohmann::json answer;
  answer["version"] = TANDEM_VERSION;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  answer["hostname"] = host;
  std::error_code ec;
  answer["binary"] = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  answer["workdir"] = std::filesystem::current_path(ec).string();
  auto files = resolve_model_files(model);
  if (!files.ok()) {
    answer["model_error"] = "model: " + files.status().message();
  } else {
    answer["model_path"] = std::filesystem::absolute(files->checkpoint, ec).string();
    const auto bytes = std::filesystem::file_size(files->checkpoint, ec);
    if (ec) {
      answer["model_error"] = "model: " + files->checkpoint + ": " + ec.message();
    } else {
      answer["model_bytes"] = bytes;
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
  std::printf("%s\n", answer.dump().c_str());
  return 0;
}

}  // namespace

void add_preflight_command(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  auto backend = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("preflight", "What `tandem launch` checks on a node (prints JSON)");
  cmd->group("");
  cmd->add_option("--model", *model, "The model path as the config names it")->required();
  cmd->add_option("--backend", *backend, "Also check that this compute backend can start here (cuda)");
  cmd->callback([model, backend] { set_exit_code(run_preflight(*model, *backend)); });
}

}  // namespace tandem::cli
