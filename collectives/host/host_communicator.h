// A Communicator for host memory built on a Transport: the collective
// algorithms, written once for every host backend.
//
// Algorithms (n ranks, S bytes):
//  - all_reduce, large: ring reduce-scatter then ring all-gather, each step's
//    block cut into chunks so that sending chunk k+1 overlaps reducing chunk k
//    (2(n-1)/n * S bytes sent per rank: the bandwidth optimum);
//  - all_reduce, small (below HostCommunicatorOptions::small_bytes): every
//    rank exchanges its whole buffer with every other and reduces locally in
//    rank order, one round trip (latency optimum, identical results on all
//    ranks);
//  - all_gather / reduce_scatter: ring; broadcast: chunked pipeline along the
//    ring from the root; barrier: a zero-byte all_gather.
// Reductions run in rank order where the algorithm allows, so results are
// deterministic for a given size and layout.
#pragma once

#include <memory>

#include "collectives/communicator.h"
#include "collectives/host/transport.h"

namespace tandem::collectives {

struct HostCommunicatorOptions {
  size_t small_bytes = 64 << 10;  // all_reduce at or below this uses the one-round path
  size_t chunk_bytes = 1 << 20;   // pipelining unit of the ring algorithms
};

std::unique_ptr<Communicator> make_host_communicator(std::unique_ptr<Transport> transport,
                                                     HostCommunicatorOptions options = {});

}  // namespace tandem::collectives
