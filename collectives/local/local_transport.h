// An in-process Transport: `size` ranks that are threads of one process, for
// testing the host collectives (and anything built on them) without a network.
//
// Matching follows transport.h: a send from rank s to rank d with tag t meets
// the oldest unmatched recv of rank d from s with tag t (and vice versa). The
// data is copied straight from the send buffer into the recv buffer when both
// sides are posted, so a send completes only when it is matched: a rendezvous,
// with no buffering. An algorithm that would only work because the network
// buffers its sends therefore deadlocks here (and fails by its deadline) rather
// than in production. A recv whose size differs from the matched send fails
// with DATA_LOSS (the send completes: it was delivered). Self-sends match too.
//
// Fault injection (like leveldb's FaultInjectionTestEnv): LocalGroup::kill(r)
// makes rank r vanish as a crashed process would. Every pending or later
// transfer of another rank with r fails UNAVAILABLE "peer r: gone", and a
// transport that saw such a failure fails every later call with it (its link
// is broken, as transport.h says). Rank r's own transport behaves as aborted.
// Destroying a transport kills its rank the same way, as a process exit would.
// abort() of one rank's transport is local to it, like a process giving up:
// its peers learn of it only through their own deadlines.
#pragma once

#include <memory>

#include "collectives/host/transport.h"

namespace tandem::collectives {

class LocalHub;

// The shared state of one in-process group; hands out each rank's transport.
class LocalGroup {
 public:
  explicit LocalGroup(int size);  // size >= 1
  int size() const;
  // The transport of `rank`; each rank's may be taken once (a programmer bug
  // otherwise). It keeps the group's state alive on its own.
  std::unique_ptr<Transport> transport(int rank);
  // Fault injection: rank `rank` dies now (thread-safe, idempotent).
  void kill(int rank);

 private:
  std::shared_ptr<LocalHub> hub_;
};

}  // namespace tandem::collectives
