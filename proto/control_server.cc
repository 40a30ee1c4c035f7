#include "proto/control_server.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "proto/convert.h"
#include "runtime/constant_time.h"
#include "proto/tandem.grpc.pb.h"

namespace tandem::control {
namespace {

constexpr std::string_view kBearer = "Bearer ";
// How often the watcher looks for generations whose client went away or whose
// deadline passed; the sync API has no callback for either.
constexpr auto kWatchPeriod = std::chrono::milliseconds(10);

std::chrono::system_clock::time_point to_system(Deadline d) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(d - Clock::now());
}

// "[::1]:50051" for IPv6 literals, "host:port" otherwise.
std::string join_host_port(const std::string& host, int port) {
  const bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// A running Generate, in the table Cancel and the watcher look through.
struct Active {
  grpc::ServerContext* context = nullptr;
  std::atomic<bool> cancelled{false};
  std::atomic<bool> stopped_on_purpose{false};  // Cancel or Shutdown, not the client leaving
  // When the write in progress began (steady_clock ticks), 0 between writes:
  // the sync API's Write blocks while the client reads nothing.
  std::atomic<int64_t> writing_since{0};
  std::atomic<bool> write_timed_out{false};
};

// writer->Write, timed for the watcher.
template <class Writer, class Message>
bool timed_write(Active& active, Writer* writer, const Message& message) {
  active.writing_since = std::max<int64_t>(1, Clock::now().time_since_epoch().count());
  const bool ok = writer->Write(message);
  active.writing_since = 0;
  return ok;
}

}  // namespace

class ControlServer::Impl final : public v1::Control::Service {
 public:
  Impl(const ControlServerOptions& options, JobHandler* handler)
      : handler_(handler), token_(options.token), address_(options.address), write_timeout_(options.write_timeout) {
    std::random_device rd;
    id_prefix_ = std::to_string(rd() % 100000);
  }

  // `Status` inside this class names the RPC method, hence tandem::Status.
  tandem::Status start(const ControlServerOptions& options);
  void shutdown(Deadline deadline);
  int port() const { return port_; }
  const std::string& address() const { return address_; }

  grpc::Status Health(grpc::ServerContext* ctx, const v1::HealthRequest*, v1::HealthResponse* out) override {
    return guarded(ctx, [&] {
      tandem::Status s = handler_->health();
      if (!s.ok()) return internal::to_grpc(s);
      out->set_api_version(1);
      out->set_state("serving");
      return grpc::Status::OK;
    });
  }

  grpc::Status Status(grpc::ServerContext* ctx, const v1::StatusRequest*, v1::StatusResponse* out) override {
    return guarded(ctx, [&] {
      auto s = handler_->status();
      if (!s.ok()) return internal::to_grpc(s.status());
      internal::status_to_proto(*s, out);
      return grpc::Status::OK;
    });
  }

  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    return guarded(ctx, [&] { return generate(ctx, *request, writer); });
  }

  grpc::Status Cancel(grpc::ServerContext* ctx, const v1::CancelRequest* request, v1::CancelResponse*) override {
    return guarded(ctx, [&] {
      if (!internal::valid_request_id(request->request_id()))
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "request_id must be 1 to 128 characters of [A-Za-z0-9._:-]");
      std::lock_guard lock(mu_);
      auto it = active_.find(request->request_id());
      if (it == active_.end())
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "no running request with id " + request->request_id());
      it->second->stopped_on_purpose = true;
      it->second->cancelled = true;
      return grpc::Status::OK;
    });
  }

  grpc::Status Shutdown(grpc::ServerContext* ctx, const v1::ShutdownRequest*, v1::ShutdownResponse*) override {
    return guarded(ctx, [&] {
      handler_->request_shutdown();
      return grpc::Status::OK;
    });
  }

 private:
  // Authenticates, then runs `body`; no exception gets past here into gRPC.
  template <typename Body>
  grpc::Status guarded(grpc::ServerContext* ctx, Body&& body) {
    try {
      if (!authorized(*ctx))
        return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                            "missing or wrong job token (metadata `authorization: Bearer <token>`)");
      return body();
    } catch (const std::exception& e) {
      return grpc::Status(grpc::StatusCode::INTERNAL, std::string("control server: ") + e.what());
    } catch (...) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "control server: unknown exception");
    }
  }

  bool authorized(const grpc::ServerContext& ctx) const {
    const auto& md = ctx.client_metadata();
    auto it = md.find("authorization");
    if (it == md.end()) return false;
    const std::string_view value(it->second.data(), it->second.size());
    if (value.substr(0, kBearer.size()) != kBearer) return false;
    return equal_constant_time(value.substr(kBearer.size()), token_);
  }

  grpc::Status generate(grpc::ServerContext* ctx, const v1::GenerateRequest& request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer);
  grpc::Status register_call(GenerateParams& params, grpc::ServerContext* ctx, std::shared_ptr<Active>* out);
  void unregister_call(const std::string& id);
  void watch();

  JobHandler* handler_;
  const std::string token_;
  const std::string address_;
  const std::chrono::milliseconds write_timeout_;
  std::string id_prefix_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<Active>> active_;  // by request id
  uint64_t next_id_ = 1;
  bool shutting_down_ = false;
  bool stop_watcher_ = false;
  std::thread watcher_;
  std::once_flag shutdown_once_;
};

tandem::Status ControlServer::Impl::start(const ControlServerOptions& options) {
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty() ||
                   !options.tls_client_ca_file.empty();
  if (tls) {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty())
      return InvalidArgument("control TLS: a certificate and its key go together (cert '" + options.tls_cert_file +
                             "', key '" + options.tls_key_file + "')");
    TANDEM_ASSIGN_OR_RETURN(std::string cert, internal::read_pem(options.tls_cert_file, "control TLS certificate"));
    TANDEM_ASSIGN_OR_RETURN(std::string key, internal::read_pem(options.tls_key_file, "control TLS key"));
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({key, cert});
    if (!options.tls_client_ca_file.empty()) {
      TANDEM_ASSIGN_OR_RETURN(ssl.pem_root_certs,
                              internal::read_pem(options.tls_client_ca_file, "control TLS client CA"));
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    creds = grpc::SslServerCredentials(ssl);
  }
  const std::string where = join_host_port(options.address, options.port);
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which lets a second server bind a port
  // another process is serving and silently share its calls.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(where, creds, &port_);
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    return Unavailable("control endpoint: cannot bind " + where +
                       " (port in use, or not an address of this host)");
  }
  watcher_ = std::thread([this] { watch(); });
  return tandem::Status::Ok();
}

grpc::Status ControlServer::Impl::register_call(GenerateParams& params, grpc::ServerContext* ctx,
                                                std::shared_ptr<Active>* out) {
  std::lock_guard lock(mu_);
  if (shutting_down_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the control server is shutting down");
  if (params.request_id.empty()) {
    do {
      params.request_id = "req-" + id_prefix_ + "-" + std::to_string(next_id_++);
    } while (active_.count(params.request_id) != 0);
  } else if (active_.count(params.request_id) != 0) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        "request_id " + params.request_id + " names a request that is still running");
  }
  auto active = std::make_shared<Active>();
  active->context = ctx;
  active_.emplace(params.request_id, active);
  *out = std::move(active);
  cv_.notify_all();  // the watcher starts looking
  return grpc::Status::OK;
}

void ControlServer::Impl::unregister_call(const std::string& id) {
  std::lock_guard lock(mu_);
  active_.erase(id);
}

grpc::Status ControlServer::Impl::generate(grpc::ServerContext* ctx, const v1::GenerateRequest& request,
                                          grpc::ServerWriter<v1::GenerateResponse>* writer) {
  auto parsed = internal::params_from_proto(request);
  if (!parsed.ok()) return internal::to_grpc(parsed.status());
  GenerateParams params = std::move(parsed).value();
  std::shared_ptr<Active> active;
  if (grpc::Status s = register_call(params, ctx, &active); !s.ok()) return s;
  struct Unregister {
    Impl* self;
    const std::string& id;
    ~Unregister() { self->unregister_call(id); }
  } unregister{this, params.request_id};

  v1::GenerateResponse started;
  started.mutable_started()->set_request_id(params.request_id);
  if (!timed_write(*active, writer, started)) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");

  int64_t pieces = 0;
  v1::GenerateResponse message;  // reused: one allocation for the text
  auto sink = [&](const GeneratedPiece& piece) {
    message.mutable_piece()->set_token_id(piece.token);
    message.mutable_piece()->set_text(piece.text);
    if (!timed_write(*active, writer, message)) {
      active->cancelled = true;
      return false;
    }
    ++pieces;
    return true;
  };
  auto result = handler_->generate(params, sink, active->cancelled);
  if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  // The watcher may see the deadline before gRPC does: the call still failed
  // by its deadline, whatever the handler made of the cancel.
  if (ctx->deadline() <= std::chrono::system_clock::now()) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the request's deadline passed");
  }
  GenerateSummary summary;
  if (result.ok()) {
    summary = *result;
  } else if (active->stopped_on_purpose && result.status().code() == StatusCode::kAborted) {
    // A handler may report a cancel as kAborted; the client asked for it, so
    // it is a finish, not an error.
    summary.finish = FinishReason::kCancelled;
    summary.generated_tokens = pieces;
  } else {
    return internal::to_grpc(result.status());
  }
  v1::GenerateResponse finished;
  auto* f = finished.mutable_finished();
  f->set_reason(internal::finish_to_proto(summary.finish));
  f->set_prompt_tokens(summary.prompt_tokens);
  f->set_generated_tokens(summary.generated_tokens);
  if (!timed_write(*active, writer, finished)) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  return grpc::Status::OK;
}

void ControlServer::Impl::watch() {
  std::unique_lock lock(mu_);
  while (!stop_watcher_) {
    const auto now = std::chrono::system_clock::now();
    const int64_t stalled_before = (Clock::now() - write_timeout_).time_since_epoch().count();
    for (auto& [id, active] : active_) {
      // A client that reads nothing blocks the handler in Write, where it
      // cannot see `cancelled`: cancelling the call is what ends that Write.
      const int64_t since = active->writing_since;
      if (since != 0 && since < stalled_before && !active->write_timed_out.exchange(true)) {
        active->cancelled = true;
        active->context->TryCancel();
      }
      if (active->cancelled) continue;
      // The deadline check backs up IsCancelled, which turns true once gRPC
      // has noticed the deadline itself.
      if (active->context->IsCancelled() || active->context->deadline() <= now) active->cancelled = true;
    }
    // Idle (nothing running): wake on the next registration, or each second.
    cv_.wait_for(lock, active_.empty() ? std::chrono::milliseconds(1000) : kWatchPeriod);
  }
}

void ControlServer::Impl::shutdown(Deadline deadline) {
  std::call_once(shutdown_once_, [&] {
    {
      std::lock_guard lock(mu_);
      shutting_down_ = true;
      for (auto& [id, active] : active_) {
        active->stopped_on_purpose = true;
        active->cancelled = true;
      }
    }
    // Waits for the handlers until the deadline, then cancels the calls left.
    if (server_) server_->Shutdown(to_system(deadline));
    {
      std::lock_guard lock(mu_);
      stop_watcher_ = true;
    }
    cv_.notify_all();
    if (watcher_.joinable()) watcher_.join();
    if (server_) server_->Wait();
  });
}

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ControlServer::~ControlServer() { impl_->shutdown(deadline_after(std::chrono::seconds(5))); }

Result<std::unique_ptr<ControlServer>> ControlServer::start(const ControlServerOptions& options,
                                                            JobHandler* handler) {
  if (handler == nullptr) return InvalidArgument("control server: no job handler");
  if (options.token.empty()) return InvalidArgument("control server: the job token is empty");
  if (options.port < 0 || options.port > 65535)
    return InvalidArgument("control.port must be in [0, 65535], got " + std::to_string(options.port));
  if (options.address.empty()) return InvalidArgument("control.address is empty");
  if (options.write_timeout.count() <= 0) return InvalidArgument("control: the write timeout must be positive");
  try {
    auto impl = std::make_unique<Impl>(options, handler);
    TANDEM_RETURN_IF_ERROR(impl->start(options));
    return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
  } catch (const std::exception& e) {
    return Internal(std::string("control server: ") + e.what());
  }
}

int ControlServer::port() const { return impl_->port(); }

std::string ControlServer::endpoint() const { return join_host_port(impl_->address(), impl_->port()); }

void ControlServer::shutdown(Deadline deadline) { impl_->shutdown(deadline); }

}  // namespace tandem::control
