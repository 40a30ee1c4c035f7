// Where the ranks of a run meet, decided once from the config so that the
// launcher (which tells the followers) and rank 0 (which listens) agree.
#pragma once

#include <string>

#include "launcher/config.h"

namespace tandem::launcher {

// localhost, 127.0.0.1 and ::1 run as child processes; anything else through ssh.
bool is_local_host(const std::string& host);
bool all_nodes_local(const RunConfig& config);

// The address rank 0's bootstrap binds: node 0's data address; loopback when
// every node is local; else every interface (the job id still guards it).
std::string coordinator_bind_address(const RunConfig& config);
// The address the other ranks dial: node 0's data address, else its host
// (loopback for a local node).
std::string coordinator_dial_address(const RunConfig& config);

}  // namespace tandem::launcher
