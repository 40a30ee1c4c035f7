// make_communicator: bootstrap the group, then hand it to the backend.
#include "collectives/collectives.h"

#include <string>
#include <utility>

#include "collectives/ucx/ucx_transport.h"
#ifdef TANDEM_HAVE_NCCL
#include "collectives/nccl/nccl_communicator.h"
#endif

namespace tandem::collectives {
namespace {

// Keeps the bootstrap, the job's control channel, open as long as the
// communicator: a rank that closed it right after setup could reset a peer's
// connection while that peer still reads the last barrier frame. Members are
// destroyed in reverse order: the communicator goes first.
class WithBootstrap final : public Communicator {
 public:
  WithBootstrap(std::shared_ptr<Bootstrap> bootstrap, std::unique_ptr<Communicator> comm)
      : bootstrap_(std::move(bootstrap)), comm_(std::move(comm)) {}

  int rank() const override { return comm_->rank(); }
  int size() const override { return comm_->size(); }
  std::string backend_name() const override { return comm_->backend_name(); }
  Status all_reduce(const void* send, void* recv, size_t count, DType dtype, ReduceOp op,
                    Deadline deadline) override {
    return comm_->all_reduce(send, recv, count, dtype, op, deadline);
  }
  Status all_gather(const void* send, void* recv, size_t count, DType dtype, Deadline deadline) override {
    return comm_->all_gather(send, recv, count, dtype, deadline);
  }
  Status reduce_scatter(const void* send, void* recv, size_t count, DType dtype, ReduceOp op,
                        Deadline deadline) override {
    return comm_->reduce_scatter(send, recv, count, dtype, op, deadline);
  }
  Status broadcast(void* buffer, size_t count, DType dtype, int root, Deadline deadline) override {
    return comm_->broadcast(buffer, count, dtype, root, deadline);
  }
  Status send(const void* buffer, size_t bytes, int peer, uint32_t tag, Deadline deadline) override {
    return comm_->send(buffer, bytes, peer, tag, deadline);
  }
  Status recv(void* buffer, size_t bytes, int peer, uint32_t tag, Deadline deadline) override {
    return comm_->recv(buffer, bytes, peer, tag, deadline);
  }
  Status barrier(Deadline deadline) override { return comm_->barrier(deadline); }
  void abort(std::string_view reason) override { comm_->abort(reason); }
  StreamExchanges* stream_exchanges() override { return comm_->stream_exchanges(); }

 private:
  std::shared_ptr<Bootstrap> bootstrap_;  // shared by a job's host and device communicators
  std::unique_ptr<Communicator> comm_;
};

// "rank 1: ..." once: the bootstrap already names the rank in its errors.
Status with_rank(const Status& s, int rank) {
  const std::string prefix = "rank " + std::to_string(rank);
  if (s.message().rfind(prefix + ":", 0) == 0) return s;
  return s.with_context(prefix);
}

Result<std::unique_ptr<Communicator>> make_ucx_on(std::shared_ptr<Bootstrap> bootstrap, const CommConfig& config,
                                                 Deadline deadline) {
  UcxOptions options;
  options.config = config.ucx;
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, make_ucx_transport(*bootstrap, options, deadline));
  std::unique_ptr<Communicator> comm = make_host_communicator(std::move(transport), config.host);
  return std::unique_ptr<Communicator>(std::make_unique<WithBootstrap>(std::move(bootstrap), std::move(comm)));
}

Result<std::unique_ptr<Communicator>> make_ucx(const CommConfig& config, Deadline deadline) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Bootstrap> bootstrap, Bootstrap::connect(config.bootstrap, deadline));
  return make_ucx_on(std::move(bootstrap), config, deadline);
}

Result<std::unique_ptr<Communicator>> make_nccl(const CommConfig& config, Deadline deadline) {
#ifdef TANDEM_HAVE_NCCL
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Bootstrap> bootstrap, Bootstrap::connect(config.bootstrap, deadline));
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, make_nccl_communicator(config, *bootstrap, deadline));
  return std::unique_ptr<Communicator>(std::make_unique<WithBootstrap>(std::move(bootstrap), std::move(comm)));
#else
  (void)config;
  (void)deadline;
  return FailedPrecondition("collectives backend nccl: this tandem was built without NCCL");
#endif
}

Result<std::unique_ptr<Communicator>> make_backend(const CommConfig& config, Deadline deadline) {
  if (config.backend == "ucx") return make_ucx(config, deadline);
  if (config.backend == "nccl") return make_nccl(config, deadline);
  return InvalidArgument("unknown collectives backend '" + config.backend +
                         "' (known: ucx, nccl; local groups come from make_local_group)");
}

}  // namespace

Result<std::unique_ptr<Communicator>> make_communicator(const CommConfig& config, Deadline deadline) {
  auto comm = make_backend(config, deadline);
  if (!comm.ok()) return with_rank(comm.status(), config.bootstrap.rank);
  return comm;
}

Result<JobCommunicators> make_job_communicators(const CommConfig& config, Deadline deadline) {
  JobCommunicators out;
  if (config.backend != "nccl") {
    TANDEM_ASSIGN_OR_RETURN(out.host, make_communicator(config, deadline));
    return out;
  }
#ifdef TANDEM_HAVE_NCCL
  auto joined = [&]() -> Status {
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Bootstrap> connected, Bootstrap::connect(config.bootstrap, deadline));
    std::shared_ptr<Bootstrap> bootstrap = std::move(connected);
    TANDEM_ASSIGN_OR_RETURN(out.host, make_ucx_on(bootstrap, config, deadline));
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> nccl, make_nccl_communicator(config, *bootstrap, deadline));
    out.device = std::make_unique<WithBootstrap>(bootstrap, std::move(nccl));
    return Status::Ok();
  }();
  if (!joined.ok()) return with_rank(joined, config.bootstrap.rank);
  return out;
#else
  (void)deadline;
  return FailedPrecondition("collectives backend nccl: this tandem was built without NCCL");
#endif
}

}  // namespace tandem::collectives
