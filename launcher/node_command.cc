// How the launcher starts a process on a node.
#include <cmath>
#include <cstdlib>

#include "launcher/cluster.h"
#include "launcher/launch.h"

namespace tandem::launcher {

std::string shell_quote(const std::string& word) {
  std::string out = "'";
  for (const char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

namespace {

// A path as the remote shell must see it: quoted, but a leading "~/" (or a
// lone "~") bare, so that it expands to the remote user's home, as a path
// typed into ssh would.
std::string shell_path(const std::string& path) {
  if (path == "~") return path;
  if (path.starts_with("~/")) return "~/" + shell_quote(path.substr(2));
  return shell_quote(path);
}

// The same expansion for a worker started here, where no shell runs.
std::string home_expanded(const std::string& path) {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0' || (path != "~" && !path.starts_with("~/"))) return path;
  return home + path.substr(1);
}

}  // namespace

std::vector<std::string> ssh_argv(const RunConfig& config, int rank, const std::string& remote_command) {
  const NodeConfig& node = config.cluster.nodes.at(rank);
  const LaunchConfig& l = config.launch;
  // ssh's own keepalive notices a dead link too, a little after the
  // heartbeat does; BatchMode: never a password prompt a launcher cannot answer.
  const int alive_interval = std::max(1, static_cast<int>(std::ceil(l.heartbeat_interval_s)));
  const int alive_count = std::max(2, static_cast<int>(std::ceil(l.heartbeat_timeout_s / alive_interval)));
  std::vector<std::string> argv = {"ssh",
                                   "-T",
                                   "-x",
                                   "-o", "BatchMode=yes",
                                   "-o", "ServerAliveInterval=" + std::to_string(alive_interval),
                                   "-o", "ServerAliveCountMax=" + std::to_string(alive_count),
                                   "-o", "ConnectTimeout=" + std::to_string(static_cast<int>(std::ceil(l.preflight_timeout_s)))};
  // Only when set: `-p` wins over a Port in ~/.ssh/config (and over `-o Port=`).
  if (node.ssh.port != 0) argv.insert(argv.end(), {"-p", std::to_string(node.ssh.port)});
  if (!node.ssh.identity_file.empty()) argv.insert(argv.end(), {"-i", node.ssh.identity_file});
  if (!node.ssh.user.empty()) argv.insert(argv.end(), {"-l", node.ssh.user});
  for (const std::string& option : node.ssh.options) argv.insert(argv.end(), {"-o", option});
  argv.insert(argv.end(), {node.host, "--", remote_command});
  return argv;
}

ProcessSpec node_command(const RunConfig& config, int rank, const NodeCommandContext& context,
                         const std::vector<std::string>& tandem_args) {
  const NodeConfig& node = config.cluster.nodes.at(rank);
  const std::string binary = node.tandem.empty() ? context.self_binary : node.tandem;
  const std::string workdir = node.workdir.empty() ? context.self_workdir : node.workdir;
  ProcessSpec spec;
  // `env` is in the environment from the start, for libraries that read it
  // when they load (UCX's memory hooks, CUDA, the dynamic linker), not only
  // when the worker sets it. Its values are therefore visible on the node's
  // process list: no secrets there (the job token travels on stdin).
  if (is_local_host(node.host)) {
    spec.argv = {home_expanded(binary)};
    spec.argv.insert(spec.argv.end(), tandem_args.begin(), tandem_args.end());
    spec.cwd = home_expanded(workdir);
    for (const auto& [name, value] : config.env) spec.env.push_back(name + "=" + value);
    return spec;
  }
  // exec: the worker replaces the shell, so it leads the session sshd made
  // and nothing sits between it and the ssh channel.
  std::string command = "cd ";
  command += shell_path(workdir);
  command += " && exec ";
  if (!config.env.empty()) {
    command += "env";
    for (const auto& [name, value] : config.env) {
      command += ' ';
      command += shell_quote(name + "=" + value);
    }
    command += ' ';
  }
  command += shell_path(binary);
  for (const std::string& a : tandem_args) {
    command += ' ';
    command += shell_quote(a);
  }
  spec.argv = ssh_argv(config, rank, command);
  return spec;
}

}  // namespace tandem::launcher
