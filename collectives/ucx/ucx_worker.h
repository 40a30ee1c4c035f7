// The UCX resources behind UcxTransport: a UCP context, its one worker and an
// endpoint to every rank of the group (itself included, so a self-send needs
// no special case), with their setup and bounded teardown. Private to
// collectives/ucx.
#pragma once

#include <ucp/api/ucp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "collectives/bootstrap/bootstrap.h"
#include "collectives/ucx/ucx_transport.h"
#include "runtime/deadline.h"
#include "runtime/status.h"

namespace tandem::collectives {

// The worker-address blob each rank publishes through the bootstrap: a
// versioned header in front of UCX's opaque address, so a blob from another
// build or a garbled one is refused before UCX parses it.
struct UcxAddressHeader {
  uint32_t magic;    // kUcxAddressMagic
  uint16_t version;  // kUcxAddressVersion
  uint16_t reserved;
  uint32_t rank;
  uint32_t bytes;  // of the UCX address that follows
};
static_assert(sizeof(UcxAddressHeader) == 16, "the address blob's header is a wire format");
inline constexpr uint32_t kUcxAddressMagic = 0x58435554;  // "TUCX" little-endian
inline constexpr uint16_t kUcxAddressVersion = 1;
inline constexpr size_t kMaxUcxAddressBytes = 64 << 10;

class UcxWorker {
 public:
  static Result<std::unique_ptr<UcxWorker>> create(Bootstrap& bootstrap, const UcxOptions& options,
                                                   Deadline deadline);
  ~UcxWorker();
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  ucp_worker_h worker() const { return worker_; }
  int event_fd() const { return efd_; }
  // Null once the endpoints were closed.
  ucp_ep_h ep(int peer) const { return eps_[static_cast<size_t>(peer)]; }

  // The first endpoint failure UCX reported, as UNAVAILABLE naming the peer;
  // OK while none has. UCX reports failures from inside ucp_worker_progress.
  bool peer_failed() const { return failed_peer_ >= 0; }
  Status peer_failure() const;

  // Releases every endpoint at once (no flush, no word to the peer), which
  // completes their pending sends with UCS_ERR_CANCELED, without progressing
  // the worker. What follows is destroy_now(): see there.
  void drop_endpoints();
  // Destroys the worker at once, without the drain of a clean close; worker()
  // is null afterwards. Not safe against a concurrent ucp_worker_signal.
  void destroy_now();

 private:
  struct PeerSlot {
    UcxWorker* self;
    int peer;
  };
  UcxWorker(int rank, int size) : rank_(rank), size_(size) {}
  static void on_endpoint_error(void* arg, ucp_ep_h ep, ucs_status_t status);
  Status init(const UcxOptions& options);
  Status connect(Bootstrap& bootstrap, Deadline deadline);
  Result<std::string> address_blob();
  void close_endpoints(bool force, std::chrono::milliseconds budget);
  void drain_until_quiet(std::chrono::milliseconds budget);

  const int rank_;
  const int size_;
  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  int efd_ = -1;
  std::vector<ucp_ep_h> eps_;
  std::vector<PeerSlot> slots_;  // sized before any endpoint exists: UCX keeps pointers into it
  int failed_peer_ = -1;
  ucs_status_t failed_status_ = UCS_OK;
  std::chrono::milliseconds close_timeout_{2000};
};

}  // namespace tandem::collectives
