// The Transport (host/transport.h) over UCP tag matching of the real UCX
// library: host buffers, whatever transports UCX picks (tcp and shared memory
// on one machine; RC/UD verbs over RoCE on a DGX Spark pair) unless the
// options restrict them.
//
// Setup, all by the deadline: read UCX's configuration (UCX_* variables, then
// the explicit settings on top), create a context and one worker, exchange
// worker addresses through the bootstrap, create an endpoint to every rank
// with peer-failure handling (a dead peer becomes an error, not a hang), then
// one small message each way with every peer and a bootstrap barrier, so that
// UCX's lazy connection setup is over before the first collective.
//
// Behaviour beyond the Transport contract:
//  - Tags: UCP matches 64-bit tags per worker, not per peer, so a UCP tag
//    carries the source rank too: in the b = max(1, ceil(log2(size))) bits
//    below bit 63, with one more bit below them for the transport's own
//    messages. A tag with any of bits 62-b .. 62 set is INVALID_ARGUMENT
//    (bits 61-62 for 2 ranks, 59-62 for 8); bit 63 and the bits below are
//    the caller's.
//  - A received message of any other size than the posted buffer is
//    DATA_LOSS (larger: UCX truncated it; smaller: the sizes disagree).
//  - wait() busy-polls the worker for `spin` (latency), then sleeps on the
//    worker's event fd in slices of at most 10 ms, so an idle wait costs no
//    CPU and abort() (which signals the worker) still ends it promptly.
//  - A wait that fails (deadline, abort, a failed peer, DATA_LOSS) leaves the
//    transport unusable: it cancels every pending receive, force-closes the
//    endpoints, which completes every pending send, and destroys the worker,
//    so buffers may be reused; later calls fail with the cause. A late
//    message of a timed-out collective could otherwise match a later receive.
//  - Errors name the peer and the UCX call with file:line, e.g.
//    "peer 1: send of 4096 B: Connection reset by remote peer (ucx status -25,
//    ucx_transport.cc:212)"; the Communicator adds rank and operation.
//  - The destructor flush-closes the endpoints within `close_timeout`, then
//    destroys the worker and context; with transfers pending or after
//    abort(), it fails the transport first, as above.
//  - abort() may be called from any thread while the transport exists.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "collectives/bootstrap/bootstrap.h"
#include "collectives/host/transport.h"
#include "runtime/deadline.h"
#include "runtime/status.h"

namespace tandem::collectives {

struct UcxOptions {
  // UCX settings as the UCX_<KEY> variables would set them, e.g. {"TLS",
  // "tcp,self"}, {"NET_DEVICES", "veth0"}, {"TCP_SNDBUF", "4m"}; a "UCX_"
  // prefix is accepted. They win over the environment.
  std::map<std::string, std::string> config;
  // Busy-poll this long without progress before sleeping on the event fd:
  // long enough that back-to-back small collectives never sleep, short
  // enough that an idle wait leaves the CPU to the peer and the kernel
  // (over the veth 50 us and 2 ms measured alike for the collectives; 0,
  // sleeping at once, made 4 KiB all_reduce 2-3x slower and 64 MiB 20%
  // slower). 2 ms rather than 200 us: a data-parallel rank that reaches the
  // gradient exchange first then catches its peer's arrival without a wake-up
  // (scripts/bench_train.sh, 2-core VM: dp=2 scaling 0.877 -> 0.918).
  std::chrono::microseconds spin{2000};
  std::chrono::milliseconds close_timeout{2000};
};

Result<std::unique_ptr<Transport>> make_ucx_transport(Bootstrap& bootstrap, const UcxOptions& options,
                                                      Deadline deadline);

}  // namespace tandem::collectives
