#include "proto/control_client.h"

#include <grpcpp/grpcpp.h>

#include "proto/convert.h"
#include "proto/tandem.grpc.pb.h"

namespace tandem::control {
namespace {

std::chrono::system_clock::time_point to_system(Deadline d) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(d - Clock::now());
}

}  // namespace

class ControlClient::Impl {
 public:
  Impl(std::shared_ptr<grpc::Channel> channel, std::string token)
      : stub_(v1::Control::NewStub(channel)), token_(std::move(token)) {}

  // A context carrying the token and the deadline.
  void prepare(grpc::ClientContext* ctx, Deadline deadline) const {
    ctx->set_deadline(to_system(deadline));
    ctx->AddMetadata("authorization", "Bearer " + token_);
  }

  std::unique_ptr<v1::Control::Stub> stub_;
  std::string token_;
};

ControlClient::ControlClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ControlClient::~ControlClient() = default;

Result<std::unique_ptr<ControlClient>> ControlClient::connect(const std::string& endpoint, const std::string& token,
                                                             const ClientTlsOptions& tls) {
  if (endpoint.empty()) return InvalidArgument("control client: the endpoint is empty (want HOST:PORT)");
  if (token.empty()) return InvalidArgument("control client: the job token is empty");
  // Metadata values must be printable ASCII; a token with a newline or a
  // control character would be refused by gRPC at the first call, less clearly.
  for (char c : token)
    if (c < 0x20 || c > 0x7e) return InvalidArgument("control client: the job token holds a non-printable character");
  try {
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    grpc::ChannelArguments args;
    if (!tls.ca_file.empty() || !tls.cert_file.empty() || !tls.key_file.empty()) {
      if (tls.cert_file.empty() != tls.key_file.empty())
        return InvalidArgument("control client TLS: a certificate and its key go together (cert '" + tls.cert_file +
                               "', key '" + tls.key_file + "')");
      grpc::SslCredentialsOptions ssl;
      if (!tls.ca_file.empty()) {
        TANDEM_ASSIGN_OR_RETURN(ssl.pem_root_certs, internal::read_pem(tls.ca_file, "control TLS CA"));
      }
      if (!tls.cert_file.empty()) {
        TANDEM_ASSIGN_OR_RETURN(ssl.pem_cert_chain, internal::read_pem(tls.cert_file, "control TLS client certificate"));
        TANDEM_ASSIGN_OR_RETURN(ssl.pem_private_key, internal::read_pem(tls.key_file, "control TLS client key"));
      }
      creds = grpc::SslCredentials(ssl);
      if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
    }
    auto channel = grpc::CreateCustomChannel(endpoint, creds, args);
    if (!channel) return InvalidArgument("control client: cannot make a channel to " + endpoint);
    return std::unique_ptr<ControlClient>(new ControlClient(std::make_unique<Impl>(channel, token)));
  } catch (const std::exception& e) {
    return Internal(std::string("control client: ") + e.what());
  }
}

Status ControlClient::health(Deadline deadline) {
  grpc::ClientContext ctx;
  impl_->prepare(&ctx, deadline);
  v1::HealthRequest request;
  v1::HealthResponse response;
  TANDEM_RETURN_IF_ERROR(internal::from_grpc(impl_->stub_->Health(&ctx, request, &response), "Health"));
  if (response.api_version() != 1)
    return FailedPrecondition("Health: the server speaks API version " + std::to_string(response.api_version()) +
                              ", this client 1");
  return Status::Ok();
}

Result<JobStatus> ControlClient::status(Deadline deadline) {
  grpc::ClientContext ctx;
  impl_->prepare(&ctx, deadline);
  v1::StatusRequest request;
  v1::StatusResponse response;
  TANDEM_RETURN_IF_ERROR(internal::from_grpc(impl_->stub_->Status(&ctx, request, &response), "Status"));
  return internal::status_from_proto(response);
}

Result<GenerateSummary> ControlClient::generate(const GenerateParams& params,
                                                const std::function<bool(const GeneratedPiece&)>& on_piece,
                                                Deadline deadline,
                                                const std::function<void(const std::string&)>& on_started) {
  TANDEM_RETURN_IF_ERROR(internal::check_text_is_utf8(params));
  grpc::ClientContext ctx;
  impl_->prepare(&ctx, deadline);
  const v1::GenerateRequest request = internal::params_to_proto(params);
  auto reader = impl_->stub_->Generate(&ctx, request);
  v1::GenerateResponse message;
  GeneratedPiece piece;
  bool have_summary = false;
  GenerateSummary summary;
  Status local;  // an error met here rather than sent by the server
  try {
    while (local.ok() && reader->Read(&message)) {
      switch (message.event_case()) {
        case v1::GenerateResponse::kStarted:
          if (on_started) on_started(message.started().request_id());
          break;
        case v1::GenerateResponse::kPiece:
          piece.token = message.piece().token_id();
          piece.text = message.piece().text();
          if (!on_piece(piece)) local = Aborted("Generate: stopped by the caller");
          break;
        case v1::GenerateResponse::kFinished: {
          auto reason = internal::finish_from_proto(message.finished().reason());
          if (!reason.ok()) {
            local = reason.status().with_context("Generate");
            break;
          }
          summary.finish = *reason;
          summary.prompt_tokens = message.finished().prompt_tokens();
          summary.generated_tokens = message.finished().generated_tokens();
          have_summary = true;
          break;
        }
        default:
          // A newer server's event this client does not know: skipped, as
          // the versioning rules promise.
          break;
      }
    }
  } catch (const std::exception& e) {
    local = Internal(std::string("Generate: callback threw: ") + e.what());
  }
  if (!local.ok()) {
    ctx.TryCancel();
    (void)reader->Finish();  // reaps the call; its CANCELLED status is ours
    return local;
  }
  TANDEM_RETURN_IF_ERROR(internal::from_grpc(reader->Finish(), "Generate"));
  if (!have_summary) return DataLoss("Generate: the stream ended without a finished message");
  return summary;
}

Status ControlClient::cancel(const std::string& request_id, Deadline deadline) {
  TANDEM_RETURN_IF_ERROR(internal::check_utf8(request_id, "request_id"));
  grpc::ClientContext ctx;
  impl_->prepare(&ctx, deadline);
  v1::CancelRequest request;
  request.set_request_id(request_id);
  v1::CancelResponse response;
  return internal::from_grpc(impl_->stub_->Cancel(&ctx, request, &response), "Cancel");
}

Status ControlClient::shutdown(Deadline deadline) {
  grpc::ClientContext ctx;
  impl_->prepare(&ctx, deadline);
  v1::ShutdownRequest request;
  v1::ShutdownResponse response;
  return internal::from_grpc(impl_->stub_->Shutdown(&ctx, request, &response), "Shutdown");
}

}  // namespace tandem::control
