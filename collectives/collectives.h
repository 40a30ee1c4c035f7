// The collectives library's front door: make a Communicator for a rank of a
// job from its configuration.
//
//   backend "ucx":   host buffers through UCP (UCX). The ranks bootstrap over
//                    TCP (bootstrap/bootstrap.h), exchange UCX worker
//                    addresses and connect endpoints to every peer.
//   backend "nccl":  device buffers through NCCL (builds with CUDA only); the
//                    unique id travels through the bootstrap.
//   backend "local": threads of one process (make_local_group), for tests.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "collectives/bootstrap/bootstrap.h"
#include "collectives/communicator.h"
#include "collectives/host/host_communicator.h"

namespace tandem::collectives {

struct CommConfig {
  std::string backend = "ucx";  // ucx | nccl
  BootstrapConfig bootstrap;
  // UCX settings applied to this process's UCX context, as the UCX_* variables
  // would be: e.g. {"TLS", "tcp,self"} to keep two namespaces off shared
  // memory, {"NET_DEVICES", "enp1s0f0np0"} for the ConnectX-7 port. Explicit
  // entries here win over the environment.
  std::map<std::string, std::string> ucx;
  HostCommunicatorOptions host;
  // nccl: the GPU this rank drives; -1 = rank modulo the visible GPUs (one
  // GPU per DGX Spark, so 0 there).
  int cuda_device = -1;
};

// Connects this rank to its group by the deadline.
Result<std::unique_ptr<Communicator>> make_communicator(const CommConfig& config, Deadline deadline);

// A job's communicators. `host` (ucx) carries host memory: commands, results,
// the model's activations when they are in host memory. With backend "nccl",
// `device` (NCCL) carries the activations in GPU memory, and the two are
// joined through one bootstrap; otherwise `device` is null.
struct JobCommunicators {
  std::unique_ptr<Communicator> host;
  std::unique_ptr<Communicator> device;
};
Result<JobCommunicators> make_job_communicators(const CommConfig& config, Deadline deadline);

// `size` communicators joined in this process (rank i is element i); each
// must be driven by its own thread.
std::vector<std::unique_ptr<Communicator>> make_local_group(int size, HostCommunicatorOptions options = {});

}  // namespace tandem::collectives
