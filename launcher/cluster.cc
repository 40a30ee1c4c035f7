#include "launcher/cluster.h"

#include <algorithm>

namespace tandem::launcher {

bool is_local_host(const std::string& host) {
  return host == "localhost" || host == "127.0.0.1" || host == "::1";
}

bool all_nodes_local(const RunConfig& config) {
  return std::all_of(config.cluster.nodes.begin(), config.cluster.nodes.end(),
                     [](const NodeConfig& n) { return is_local_host(n.host); });
}

std::string coordinator_bind_address(const RunConfig& config) {
  const NodeConfig& node0 = config.cluster.nodes.at(0);
  if (!node0.data_address.empty()) return node0.data_address;
  return all_nodes_local(config) ? "127.0.0.1" : "0.0.0.0";
}

std::string coordinator_dial_address(const RunConfig& config) {
  const NodeConfig& node0 = config.cluster.nodes.at(0);
  if (!node0.data_address.empty()) return node0.data_address;
  return is_local_host(node0.host) ? "127.0.0.1" : node0.host;
}

}  // namespace tandem::launcher
