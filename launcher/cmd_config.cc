// `tandem config show`: the config a run would use, after defaults and
// overrides, so a user can see exactly what `--set` changed.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "launcher/commands.h"
#include "launcher/config.h"

namespace tandem::cli {
namespace {

struct ConfigShowFlags {
  std::string path;
  std::vector<std::string> overrides;
};

int run_config_show(const ConfigShowFlags& f) {
  auto config = launcher::load_config(f.path, f.overrides);
  if (!config.ok()) return report_error(config.status());
  const std::string text = launcher::to_yaml(*config);
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
    return report_error(TANDEM_ERRNO("writing the config to stdout"));
  return 0;
}

}  // namespace

void add_config_command(CLI::App& app) {
  auto flags = std::make_shared<ConfigShowFlags>();
  CLI::App* config = app.add_subcommand("config", "Inspect run configurations");
  config->require_subcommand(1);
  CLI::App* show = config->add_subcommand("show", "Print the resolved config (every key) as YAML");
  show->add_option("config", flags->path, "YAML run config (default: the embedded configs/local.yaml)");
  // One value per --set, so `--set a=1 x.yaml` leaves x.yaml the config.
  show->add_option("--set", flags->overrides, "Override a key: KEY.PATH=VALUE, VALUE in YAML (repeatable)")
      ->allow_extra_args(false);
  show->callback([flags] { set_exit_code(run_config_show(*flags)); });
}

}  // namespace tandem::cli
