#include "collectives/ucx/ucx_worker.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "collectives/ucx/ucx_status.h"

namespace tandem::collectives {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the address blob is written in host order, which must be little-endian");

// Frees a UCP config whatever path leaves the scope.
struct ConfigGuard {
  ucp_config_t* config = nullptr;
  ~ConfigGuard() {
    if (config) ucp_config_release(config);
  }
};

std::string_view strip_prefix(std::string_view key) {
  return key.starts_with("UCX_") ? key.substr(4) : key;
}

}  // namespace

Result<std::unique_ptr<UcxWorker>> UcxWorker::create(Bootstrap& bootstrap, const UcxOptions& options,
                                                     Deadline deadline) {
  std::unique_ptr<UcxWorker> w(new UcxWorker(bootstrap.rank(), bootstrap.size()));
  w->close_timeout_ = options.close_timeout;
  TANDEM_RETURN_IF_ERROR(w->init(options));
  TANDEM_RETURN_IF_ERROR(w->connect(bootstrap, deadline));
  return w;
}

Status UcxWorker::init(const UcxOptions& options) {
  ConfigGuard config;
  // NULL prefix and file: the UCX_* environment, as every UCX tool reads it.
  TANDEM_UCS_CHECK(ucp_config_read(nullptr, nullptr, &config.config), "ucx: ucp_config_read");
  for (const auto& [key, value] : options.config) {
    const std::string name(strip_prefix(key));
    const ucs_status_t s = ucp_config_modify(config.config, name.c_str(), value.c_str());
    if (s != UCS_OK) {
      Status e = TANDEM_UCS_ERROR(s, "ucx: setting UCX_" + name + "=" + value);
      return InvalidArgument(e.message());  // a bad setting is the caller's input
    }
  }

  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_ESTIMATED_NUM_EPS |
                      UCP_PARAM_FIELD_MT_WORKERS_SHARED | UCP_PARAM_FIELD_NAME;
  // WAKEUP: wait() sleeps on the worker's event fd once a wait grows long.
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
  params.estimated_num_eps = static_cast<size_t>(size_);
  params.mt_workers_shared = 0;
  params.name = "tandem";
  TANDEM_UCS_CHECK(ucp_init(&params, config.config, &context_), "ucx: ucp_init");

  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  // SERIALIZED, not SINGLE: the thread that drives the communicator need not
  // be the one that created it. abort() only calls ucp_worker_signal, which
  // UCX allows from any thread.
  wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;
  TANDEM_UCS_CHECK(ucp_worker_create(context_, &wp, &worker_), "ucx: ucp_worker_create");
  TANDEM_UCS_CHECK(ucp_worker_get_efd(worker_, &efd_), "ucx: ucp_worker_get_efd");
  return Status::Ok();
}

Result<std::string> UcxWorker::address_blob() {
  ucp_address_t* address = nullptr;
  size_t bytes = 0;
  TANDEM_UCS_CHECK(ucp_worker_get_address(worker_, &address, &bytes), "ucx: ucp_worker_get_address");
  std::string blob;
  if (bytes > kMaxUcxAddressBytes) {
    ucp_worker_release_address(worker_, address);
    return Internal("ucx: worker address of " + std::to_string(bytes) + " bytes exceeds " +
                    std::to_string(kMaxUcxAddressBytes));
  }
  const UcxAddressHeader h{kUcxAddressMagic, kUcxAddressVersion, 0, static_cast<uint32_t>(rank_),
                           static_cast<uint32_t>(bytes)};
  blob.resize(sizeof h + bytes);
  std::memcpy(blob.data(), &h, sizeof h);
  std::memcpy(blob.data() + sizeof h, address, bytes);
  ucp_worker_release_address(worker_, address);
  return blob;
}

Status UcxWorker::connect(Bootstrap& bootstrap, Deadline deadline) {
  TANDEM_ASSIGN_OR_RETURN(std::string blob, address_blob());
  TANDEM_ASSIGN_OR_RETURN(std::vector<std::string> blobs, bootstrap.all_gather(blob, deadline));
  if (blobs.size() != static_cast<size_t>(size_))
    return DataLoss("ucx: bootstrap returned " + std::to_string(blobs.size()) + " worker addresses for " +
                    std::to_string(size_) + " ranks");
  // Validate every peer's blob before UCX parses any of them.
  for (int peer = 0; peer < size_; ++peer) {
    const std::string& b = blobs[static_cast<size_t>(peer)];
    UcxAddressHeader h{};
    if (b.size() >= sizeof h) std::memcpy(&h, b.data(), sizeof h);
    const std::string who = "ucx: worker address of peer " + std::to_string(peer);
    if (b.size() < sizeof h || h.magic != kUcxAddressMagic)
      return DataLoss(who + " is not a tandem UCX address (" + std::to_string(b.size()) + " bytes)");
    if (h.version != kUcxAddressVersion)
      return FailedPrecondition(who + " has format version " + std::to_string(h.version) +
                                ", this build reads " + std::to_string(kUcxAddressVersion));
    if (h.rank != static_cast<uint32_t>(peer) || h.bytes == 0 || h.bytes > kMaxUcxAddressBytes ||
        b.size() != sizeof h + h.bytes)
      return DataLoss(who + " is malformed (claims rank " + std::to_string(h.rank) + ", " +
                      std::to_string(h.bytes) + " bytes in a blob of " + std::to_string(b.size()) + ")");
  }

  slots_.resize(static_cast<size_t>(size_));
  eps_.assign(static_cast<size_t>(size_), nullptr);
  for (int peer = 0; peer < size_; ++peer) {
    slots_[static_cast<size_t>(peer)] = PeerSlot{this, peer};
    ucp_ep_params_t ep{};
    ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                    UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep.address = reinterpret_cast<const ucp_address_t*>(blobs[static_cast<size_t>(peer)].data() +
                                                         sizeof(UcxAddressHeader));
    // PEER: UCX watches the connection (and keepalive) and reports a dead
    // peer through the handler instead of letting requests wait forever.
    ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    ep.err_handler.cb = &UcxWorker::on_endpoint_error;
    ep.err_handler.arg = &slots_[static_cast<size_t>(peer)];
    TANDEM_UCS_CHECK(ucp_ep_create(worker_, &ep, &eps_[static_cast<size_t>(peer)]),
                     "ucx: ucp_ep_create to peer " + std::to_string(peer));
  }
  return Status::Ok();
}

void UcxWorker::on_endpoint_error(void* arg, ucp_ep_h, ucs_status_t status) {
  auto* slot = static_cast<PeerSlot*>(arg);
  if (slot->self->failed_peer_ < 0) {
    slot->self->failed_peer_ = slot->peer;
    slot->self->failed_status_ = status;
  }
}

Status UcxWorker::peer_failure() const {
  if (failed_peer_ < 0) return Status::Ok();
  Status e = TANDEM_UCS_ERROR(failed_status_, "peer " + std::to_string(failed_peer_) + ": connection failed");
  return Unavailable(e.message());
}

void UcxWorker::drop_endpoints() { close_endpoints(/*force=*/true, std::chrono::milliseconds(0)); }

// Once the endpoints were dropped without a word (a stop, a deadline, a dead
// peer), a live peer's next wireup message opens a new endpoint here whose
// reply then waits on a TCP connection the peer closes; Debian's UCX 1.13
// purges that reply, from ucp_worker_progress or ucp_worker_destroy alike,
// and asserts (openucx/ucx#8175), aborting a rank that was stopping cleanly
// (6 of 80 SIGINT stops of a training job on a loaded machine). Destroying
// the worker before it is progressed again leaves no time for such an
// endpoint to appear.
void UcxWorker::destroy_now() {
  if (!worker_) return;
  ucp_worker_destroy(worker_);
  worker_ = nullptr;
}

void UcxWorker::close_endpoints(bool force, std::chrono::milliseconds budget) {
  std::vector<void*> pending;
  for (size_t peer = 0; peer < eps_.size(); ++peer) {
    if (!eps_[peer]) continue;
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    // A failed endpoint cannot flush; UCX wants it released by force.
    p.flags = (force || failed_peer_ >= 0) ? UCP_EP_CLOSE_FLAG_FORCE : 0;
    ucs_status_ptr_t r = ucp_ep_close_nbx(eps_[peer], &p);
    eps_[peer] = nullptr;
    if (UCS_PTR_IS_PTR(r)) pending.push_back(r);
    // An error closing one endpoint leaves nothing to do for it: the worker's
    // destruction releases what is left.
  }
  const Deadline until = Clock::now() + budget;
  for (;;) {
    bool busy = false;
    for (void* r : pending) busy |= ucp_request_check_status(r) == UCS_INPROGRESS;
    if (!busy || Clock::now() >= until) break;
    ucp_worker_progress(worker_);
  }
  // Frees complete and incomplete requests alike; UCX finishes the latter
  // internally without calling back.
  for (void* r : pending) ucp_request_free(r);
}

// Progresses the worker until nothing has happened for kQuiet (or `budget`
// ran out), so that wireup messages still queued on endpoints the peer opened
// (a connection's reply) leave before a cleanly closed worker is destroyed:
// the UCX of Debian 12 asserts when ucp_worker_destroy purges one.
void UcxWorker::drain_until_quiet(std::chrono::milliseconds budget) {
  constexpr auto kQuiet = std::chrono::milliseconds(20);
  const Deadline until = Clock::now() + budget;
  auto last_event = Clock::now();
  while (Clock::now() < until && Clock::now() - last_event < kQuiet) {
    if (ucp_worker_progress(worker_) != 0) last_event = Clock::now();
  }
}

UcxWorker::~UcxWorker() {
  if (worker_) {
    close_endpoints(/*force=*/false, close_timeout_);
    drain_until_quiet(std::min(close_timeout_, std::chrono::milliseconds(250)));
    ucp_worker_destroy(worker_);
  }
  if (context_) ucp_cleanup(context_);
}

}  // namespace tandem::collectives
