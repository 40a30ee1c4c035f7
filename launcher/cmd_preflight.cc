// `tandem preflight --model PATH`: what `tandem launch` asks every node
// before a job starts (internal). One JSON line on stdout: this binary's
// version, and the model as this node sees it.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "launcher/commands.h"
#include "runtime/model_files.h"

namespace tandem::cli {
namespace {

int run_preflight(const std::string& model) {
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
  std::printf("%s\n", answer.dump().c_str());
  return 0;
}

}  // namespace

void add_preflight_command(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("preflight", "What `tandem launch` checks on a node (prints JSON)");
  cmd->group("");
  cmd->add_option("--model", *model, "The model path as the config names it")->required();
  cmd->callback([model] { set_exit_code(run_preflight(*model)); });
}

}  // namespace tandem::cli
