// A client of the control endpoint (service tandem.v1.Control), for `tandem
// ctl` and tests. Every call takes a deadline and presents the job token.
//
// Errors come back as Status: the gRPC code mapped onto tandem's
// (UNAUTHENTICATED -> kUnauthenticated, UNAVAILABLE -> kUnavailable,
// DEADLINE_EXCEEDED -> kDeadlineExceeded, CANCELLED -> kAborted, ...), and a
// message that names the call, the gRPC code and the server's cause:
// "Generate: gRPC INVALID_ARGUMENT: top_p must be in (0, 1], got 1.5".
// No exception leaves the client (one thrown by a callback becomes kInternal).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "proto/control_types.h"
#include "runtime/deadline.h"
#include "runtime/status.h"

namespace tandem::control {

struct ClientTlsOptions {
  // All empty: plaintext. ca_file (PEM) turns TLS on and is the CA the
  // server's certificate must chain to; cert_file and key_file (together)
  // present a client certificate, for servers that demand one.
  std::string ca_file, cert_file, key_file;
  // The name the server's certificate is checked against, when it differs
  // from the endpoint's host (e.g. dialling an IP address).
  std::string server_name;
};

class ControlClient {
 public:
  // Creates the channel; does not dial yet (the first call does). Errors:
  // InvalidArgument (empty endpoint or token, cert without key), NotFound (a
  // TLS file that cannot be read, named).
  static Result<std::unique_ptr<ControlClient>> connect(const std::string& endpoint, const std::string& token,
                                                        const ClientTlsOptions& tls = {});
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  Status health(Deadline deadline);
  Result<JobStatus> status(Deadline deadline);
  // Streams one completion: `on_started` (optional) gets the request id
  // (params.request_id or the server's), then `on_piece` each piece in order.
  // `on_piece` returning false cancels the call (kAborted). The summary is the
  // server's final message.
  Result<GenerateSummary> generate(const GenerateParams& params,
                                   const std::function<bool(const GeneratedPiece&)>& on_piece,
                                   Deadline deadline,
                                   const std::function<void(const std::string&)>& on_started = {});
  Status cancel(const std::string& request_id, Deadline deadline);
  Status shutdown(Deadline deadline);

  class Impl;

 private:
  explicit ControlClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::control
