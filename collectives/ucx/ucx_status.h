// UCX status codes in tandem's error vocabulary. Every UCX call that returns
// a ucs_status_t goes through TANDEM_UCS_CHECK (or ucs_error for the
// UCS_PTR_STATUS of a request), so an error names the call and file:line.
#pragma once

#include <ucs/type/status.h>

#include <cstring>
#include <string>
#include <string_view>

#include "runtime/status.h"

namespace tandem::collectives {

// Which tandem code a UCX failure is: a peer that went away is UNAVAILABLE
// (the caller may retry with a new group), a too-small buffer is DATA_LOSS.
inline StatusCode ucs_status_code(ucs_status_t s) {
  switch (s) {
    case UCS_ERR_MESSAGE_TRUNCATED: return StatusCode::kDataLoss;
    case UCS_ERR_CANCELED: return StatusCode::kAborted;
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_REJECTED:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_IO_ERROR:
    case UCS_ERR_TIMED_OUT:
    case UCS_ERR_NO_DEVICE:
      return StatusCode::kUnavailable;
    case UCS_ERR_NO_MEMORY:
    case UCS_ERR_NO_RESOURCE:
    case UCS_ERR_EXCEEDS_LIMIT:
      return StatusCode::kResourceExhausted;
    case UCS_ERR_INVALID_PARAM:
    case UCS_ERR_NO_ELEM:
      return StatusCode::kInvalidArgument;
    case UCS_ERR_UNSUPPORTED: return StatusCode::kUnimplemented;
    default: return StatusCode::kInternal;
  }
}

// "<what>: <UCX's text> (ucx status -25, ucx_worker.cc:42)".
inline Status ucs_error(ucs_status_t s, std::string_view what, const char* file, int line) {
  const char* slash = std::strrchr(file, '/');
  std::string m(what);
  m += ": ";
  m += ucs_status_string(s);
  // Appended piece by piece: g++ 12 warns falsely on `":" + to_string(n)`.
  m += " (ucx status ";
  m += std::to_string(static_cast<int>(s));
  m += ", ";
  m += slash ? slash + 1 : file;
  m += ':';
  m += std::to_string(line);
  m += ')';
  return Status(ucs_status_code(s), std::move(m));
}

}  // namespace tandem::collectives

#define TANDEM_UCS_ERROR(status, what) ::tandem::collectives::ucs_error((status), (what), __FILE__, __LINE__)

// Returns the error from the enclosing function unless `expr` is UCS_OK.
#define TANDEM_UCS_CHECK(expr, what)                                   \
  do {                                                                 \
    const ucs_status_t tandem_ucs_ = (expr);                           \
    if (tandem_ucs_ != UCS_OK) return TANDEM_UCS_ERROR(tandem_ucs_, (what)); \
  } while (0)
