// Internal to proto/: maps the plain structs (control_types.h) onto the
// generated tandem.v1 messages and tandem's Status onto gRPC's, and validates
// what arrives over the wire. Shared by the server and the client so both
// read the same mapping.
#pragma once

#include <grpcpp/support/status.h>

#include <string>
#include <string_view>

#include "proto/control_types.h"
#include "proto/tandem.pb.h"
#include "runtime/status.h"

namespace tandem::control::internal {

// tandem -> gRPC code, message kept.
grpc::Status to_grpc(const Status& status);
// gRPC -> tandem: "<call>: gRPC <CODE>: <message>".
Status from_grpc(const grpc::Status& status, std::string_view call);
// "DEADLINE_EXCEEDED" for grpc::DEADLINE_EXCEEDED.
std::string_view grpc_code_name(grpc::StatusCode code);

// Validates a request as it came over the wire and fills the defaults of
// unset fields. InvalidArgument names the field.
Result<GenerateParams> params_from_proto(const v1::GenerateRequest& request);
// The client's side; seed -1 and an empty request id stay unset.
v1::GenerateRequest params_to_proto(const GenerateParams& params);
// InvalidArgument naming `field` and the byte offset when `text` is not
// UTF-8: proto3 `string` fields must be, and protobuf would otherwise refuse
// to serialize the request with nothing better than gRPC INTERNAL.
Status check_utf8(std::string_view text, const std::string& field);
// check_utf8 over a request's string fields: request_id, the prompt text, stop strings.
Status check_text_is_utf8(const GenerateParams& params);

// True if `id` is a request id the API accepts (1..128 of [A-Za-z0-9._:-]).
bool valid_request_id(std::string_view id);

v1::FinishReason finish_to_proto(FinishReason reason);
Result<FinishReason> finish_from_proto(v1::FinishReason reason);

// Reads a PEM file for TLS; errors name `what` ("TLS certificate") and the path.
Result<std::string> read_pem(const std::string& path, std::string_view what);

void status_to_proto(const JobStatus& status, v1::StatusResponse* out);
JobStatus status_from_proto(const v1::StatusResponse& response);

}  // namespace tandem::control::internal
