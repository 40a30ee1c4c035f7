// `tandem bench collectives`: nccl-tests' table for tandem's Communicator,
// one process per rank (or --spawn-local N forks them on 127.0.0.1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "collectives/bootstrap/bootstrap.h"
#include "runtime/status.h"

namespace tandem::cli {

struct CollectivesBenchFlags {
  int rank = 0;
  int world_size = 2;
  std::string coordinator = "127.0.0.1:29500";  // host:port rank 0 listens on
  std::string job_id = "tandem-bench";
  std::string backend = "ucx";
  std::string ucx_tls;                  // UCX_TLS, e.g. tcp,self
  std::string ucx_net_devices;          // UCX_NET_DEVICES, e.g. veth0 or mlx5_0:1
  std::vector<std::string> ucx_settings;  // more KEY=VALUE UCX settings
  std::string ops = "all_reduce,all_gather,reduce_scatter,broadcast,sendrecv";
  std::string min_bytes = "8";
  std::string max_bytes = "64M";
  double factor = 2;
  std::string counts;  // explicit element counts, instead of the byte range
  std::string dtypes = "float";
  std::string redops = "sum";
  int root = 0;
  int iters = 20;
  int warmup = 5;
  bool check = false;
  double timeout_s = 60;  // per call, and for connecting
  size_t chunk_bytes = 1 << 20;
  size_t small_bytes = 64 << 10;
  int spawn_local = 0;
  int protocol_version = collectives::kBootstrapProtocolVersion;  // hidden: tests a mismatch
};

// One rank's run; rank 0 prints the table on stdout.
Status run_collectives_bench(const CollectivesBenchFlags& flags);

// Forks flags.spawn_local ranks on 127.0.0.1 (a free port), each running
// run_collectives_bench; waits for all. When one fails the others get
// --timeout to finish before they are killed. Returns the process exit code.
int spawn_local_ranks(const CollectivesBenchFlags& flags);

}  // namespace tandem::cli
