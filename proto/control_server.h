// The control endpoint rank 0 serves (tandem.proto, service tandem.v1.Control)
// for a JobHandler the worker implements.
//
// The server does what does not depend on the job: it authenticates every call
// (`authorization: Bearer <token>`, compared in constant time; missing or wrong
// -> UNAUTHENTICATED), validates requests (INVALID_ARGUMENT naming the field),
// assigns request ids, keeps the table of running generations for Cancel, and
// flips a generation's `cancelled` flag when Cancel names it, when its client
// cancels or its deadline passes, or when the server shuts down. The handler
// does the rest and reports errors as Status, which the server maps to gRPC
// codes (kNotFound -> NOT_FOUND, ...). No exception leaves the server: one
// thrown by the handler becomes INTERNAL.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "proto/control_types.h"
#include "runtime/deadline.h"
#include "runtime/status.h"

namespace tandem::control {

class JobHandler {  // implemented by the worker (rank 0); called from gRPC threads
 public:
  virtual ~JobHandler() = default;
  virtual Status health() = 0;  // OK when the job can serve
  virtual Result<JobStatus> status() = 0;
  // Validates params (InvalidArgument naming the field), then streams pieces
  // to `sink` until done; `sink` returns false when the client went away.
  // `cancelled` flips when Cancel(request_id) or the RPC is cancelled (client
  // cancel, deadline, server shutdown): return soon after, with finish
  // kCancelled. Calls may run concurrently; the handler serialises if it must.
  virtual Result<GenerateSummary> generate(const GenerateParams& params,
                                           const std::function<bool(const GeneratedPiece&)>& sink,
                                           const std::atomic<bool>& cancelled) = 0;
  virtual void request_shutdown() = 0;  // returns at once; the job winds down
};

struct ControlServerOptions {
  std::string address = "127.0.0.1";  // loopback unless the config says otherwise
  int port = 0;                       // 0: the OS picks; see ControlServer::port()
  std::string token;                  // required, non-empty
  // All empty: plaintext. cert and key (PEM files) go together; client_ca
  // also demands client certificates signed by it.
  std::string tls_cert_file, tls_key_file, tls_client_ca_file;
  // A Generate whose client has taken no message for this long (a write
  // blocked on gRPC's flow control) is cancelled: its engine request ends
  // and its handler thread is freed.
  std::chrono::milliseconds write_timeout{30000};
};

class ControlServer {
 public:
  // Binds address:port and starts serving. Errors: InvalidArgument (empty
  // token, cert without key, bad port), NotFound (a TLS file that cannot be
  // read, named), Unavailable (the bind failed, naming address:port).
  static Result<std::unique_ptr<ControlServer>> start(const ControlServerOptions& options,
                                                      JobHandler* handler);
  ~ControlServer();  // shutdown(deadline_after(5 s)) if not shut down yet
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  int port() const;  // the bound port (useful with port 0)
  // "127.0.0.1:41234": what a client dials.
  std::string endpoint() const;
  // Stops accepting calls, flips `cancelled` for every running generation and
  // waits for in-flight calls until `deadline`, then cancels what is left.
  // Bounded by the deadline provided the handler honours `cancelled`.
  // Idempotent. Never call it from inside a JobHandler method (it waits for
  // them): request_shutdown() should signal another thread that calls it.
  void shutdown(Deadline deadline);

  class Impl;

 private:
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::control
