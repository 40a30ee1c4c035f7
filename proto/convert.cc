#include "proto/convert.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "runtime/unicode_class.h"

namespace tandem::control {

std::string_view to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kEos: return "eos";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "unknown";
}

namespace internal {

grpc::Status to_grpc(const Status& status) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (status.code()) {
    case StatusCode::kOk: return grpc::Status::OK;
    case StatusCode::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case StatusCode::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case StatusCode::kDataLoss: code = grpc::StatusCode::DATA_LOSS; break;
    case StatusCode::kOutOfRange: code = grpc::StatusCode::OUT_OF_RANGE; break;
    case StatusCode::kResourceExhausted: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    case StatusCode::kFailedPrecondition: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    case StatusCode::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
    case StatusCode::kDeadlineExceeded: code = grpc::StatusCode::DEADLINE_EXCEEDED; break;
    case StatusCode::kAborted: code = grpc::StatusCode::ABORTED; break;
    case StatusCode::kUnauthenticated: code = grpc::StatusCode::UNAUTHENTICATED; break;
    case StatusCode::kUnimplemented: code = grpc::StatusCode::UNIMPLEMENTED; break;
    case StatusCode::kInternal: code = grpc::StatusCode::INTERNAL; break;
  }
  return grpc::Status(code, status.message());
}

std::string_view grpc_code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    default: return "UNKNOWN_CODE";
  }
}

Status from_grpc(const grpc::Status& status, std::string_view call) {
  if (status.ok()) return Status::Ok();
  StatusCode code = StatusCode::kInternal;
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::ALREADY_EXISTS: code = StatusCode::kInvalidArgument; break;
    case grpc::StatusCode::NOT_FOUND: code = StatusCode::kNotFound; break;
    case grpc::StatusCode::DATA_LOSS: code = StatusCode::kDataLoss; break;
    case grpc::StatusCode::OUT_OF_RANGE: code = StatusCode::kOutOfRange; break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: code = StatusCode::kResourceExhausted; break;
    case grpc::StatusCode::FAILED_PRECONDITION: code = StatusCode::kFailedPrecondition; break;
    case grpc::StatusCode::UNAVAILABLE: code = StatusCode::kUnavailable; break;
    case grpc::StatusCode::DEADLINE_EXCEEDED: code = StatusCode::kDeadlineExceeded; break;
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::ABORTED: code = StatusCode::kAborted; break;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED: code = StatusCode::kUnauthenticated; break;
    case grpc::StatusCode::UNIMPLEMENTED: code = StatusCode::kUnimplemented; break;
    default: code = StatusCode::kInternal; break;
  }
  std::string message(call);
  message += ": gRPC ";
  message += grpc_code_name(status.error_code());
  if (!status.error_message().empty()) message += ": " + status.error_message();
  return Status(code, std::move(message));
}

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdBytes) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

Result<GenerateParams> params_from_proto(const v1::GenerateRequest& r) {
  GenerateParams p;
  if (!r.request_id().empty() && !valid_request_id(r.request_id()))
    return InvalidArgument("request_id must be 1 to " + std::to_string(kMaxRequestIdBytes) +
                           " characters of [A-Za-z0-9._:-]");
  p.request_id = r.request_id();
  if (r.prompt_case() == v1::GenerateRequest::kTokens) {
    p.has_prompt_tokens = true;
    p.prompt_tokens.reserve(static_cast<size_t>(r.tokens().ids_size()));
    for (int i = 0; i < r.tokens().ids_size(); ++i) {
      const int id = r.tokens().ids(i);
      if (id < 0)
        return InvalidArgument("tokens.ids[" + std::to_string(i) + "] must be >= 0, got " + std::to_string(id));
      p.prompt_tokens.push_back(id);
    }
  } else if (r.prompt_case() == v1::GenerateRequest::kText) {
    p.prompt = r.text();
  }
  if (r.has_max_tokens()) {
    if (r.max_tokens() < 1) return InvalidArgument("max_tokens must be >= 1, got " + std::to_string(r.max_tokens()));
    p.max_tokens = r.max_tokens();
  }
  if (r.has_temperature()) {
    if (!std::isfinite(r.temperature()) || r.temperature() < 0)
      return InvalidArgument("temperature must be finite and >= 0, got " + num(r.temperature()));
    p.temperature = r.temperature();
  }
  if (r.has_top_p()) {
    // Written so NaN fails too.
    if (!(r.top_p() > 0 && r.top_p() <= 1)) return InvalidArgument("top_p must be in (0, 1], got " + num(r.top_p()));
    p.top_p = r.top_p();
  }
  if (r.top_k() < 0) return InvalidArgument("top_k must be >= 0, got " + std::to_string(r.top_k()));
  p.top_k = r.top_k();
  if (r.has_seed()) {
    if (r.seed() < 0) return InvalidArgument("seed must be >= 0 when set, got " + std::to_string(r.seed()));
    p.seed = r.seed();
  }
  if (static_cast<size_t>(r.stop_size()) > kMaxStopStrings)
    return InvalidArgument("stop: at most " + std::to_string(kMaxStopStrings) + " strings, got " +
                           std::to_string(r.stop_size()));
  for (int i = 0; i < r.stop_size(); ++i) {
    const std::string& s = r.stop(i);
    if (s.empty() || s.size() > kMaxStopBytes)
      return InvalidArgument("stop[" + std::to_string(i) + "] must be 1 to " + std::to_string(kMaxStopBytes) +
                             " bytes, got " + std::to_string(s.size()));
    p.stop.push_back(s);
  }
  return p;
}

Status check_utf8(std::string_view text, const std::string& field) {
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Unit unit = next_utf8(text, pos);
    if (unit.cp == kInvalidUtf8)
      return InvalidArgument(field + " is not valid UTF-8 (byte " + std::to_string(pos) + " of " +
                             std::to_string(text.size()) + ")");
    pos += unit.bytes;
  }
  return Status::Ok();
}

Status check_text_is_utf8(const GenerateParams& p) {
  TANDEM_RETURN_IF_ERROR(check_utf8(p.request_id, "request_id"));
  if (!p.has_prompt_tokens) TANDEM_RETURN_IF_ERROR(check_utf8(p.prompt, "prompt"));
  for (size_t i = 0; i < p.stop.size(); ++i) TANDEM_RETURN_IF_ERROR(check_utf8(p.stop[i], "stop[" + std::to_string(i) + "]"));
  return Status::Ok();
}

v1::GenerateRequest params_to_proto(const GenerateParams& p) {
  v1::GenerateRequest r;
  r.set_request_id(p.request_id);
  if (p.has_prompt_tokens) {
    auto* ids = r.mutable_tokens()->mutable_ids();
    ids->Reserve(static_cast<int>(p.prompt_tokens.size()));
    for (int id : p.prompt_tokens) ids->Add(id);
  } else {
    r.set_text(p.prompt);
  }
  r.set_max_tokens(p.max_tokens);
  r.set_temperature(p.temperature);
  r.set_top_p(p.top_p);
  r.set_top_k(p.top_k);
  if (p.seed != -1) r.set_seed(p.seed);  // other negatives go out for the server to refuse
  for (const auto& s : p.stop) r.add_stop(s);
  return r;
}

v1::FinishReason finish_to_proto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case FinishReason::kEos: return v1::FINISH_REASON_EOS;
    case FinishReason::kCancelled: return v1::FINISH_REASON_CANCELLED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

Result<FinishReason> finish_from_proto(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_LENGTH: return FinishReason::kLength;
    case v1::FINISH_REASON_STOP: return FinishReason::kStop;
    case v1::FINISH_REASON_EOS: return FinishReason::kEos;
    case v1::FINISH_REASON_CANCELLED: return FinishReason::kCancelled;
    default: return DataLoss("finished.reason: unknown finish reason " + std::to_string(static_cast<int>(reason)));
  }
}

Result<std::string> read_pem(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(std::string(what) + " " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return NotFound(std::string(what) + " " + path + ": read failed");
  if (text.str().find("-----BEGIN ") == std::string::npos)
    return InvalidArgument(std::string(what) + " " + path + ": not a PEM file (no -----BEGIN line)");
  return text.str();
}

void status_to_proto(const JobStatus& s, v1::StatusResponse* out) {
  for (const auto& r : s.ranks) {
    auto* rank = out->add_ranks();
    rank->set_rank(r.rank);
    rank->set_host(r.host);
    rank->set_memory_bytes(r.memory_bytes);
  }
  out->set_model(s.model);
  out->set_model_shape(s.model_shape);
  out->set_tp(s.tp);
  out->set_pp(s.pp);
  out->set_uptime_seconds(s.uptime_s);
  out->set_tokens_served(s.tokens_served);
  out->set_requests_served(s.requests_served);
  out->set_state(s.state);
}

JobStatus status_from_proto(const v1::StatusResponse& r) {
  JobStatus s;
  for (const auto& rank : r.ranks()) s.ranks.push_back(RankInfo{rank.rank(), rank.host(), rank.memory_bytes()});
  s.model = r.model();
  s.model_shape = r.model_shape();
  s.tp = r.tp();
  s.pp = r.pp();
  s.uptime_s = r.uptime_seconds();
  s.tokens_served = r.tokens_served();
  s.requests_served = r.requests_served();
  s.state = r.state();
  return s;
}

}  // namespace internal
}  // namespace tandem::control
