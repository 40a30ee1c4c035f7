// One error vocabulary for every tandem module: Status (a code and a message)
// and Result<T> (a value or a Status). No exception crosses a module boundary;
// TANDEM_CHECK aborts, and is only for programmer bugs, never for bad input.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tandem {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is wrong (a flag, a config key, a request)
  kNotFound,            // a file, model or peer that should exist does not
  kDataLoss,            // a file or message is malformed or truncated
  kOutOfRange,          // a value outside what the format or hardware allows
  kResourceExhausted,   // memory, KV blocks, file descriptors
  kFailedPrecondition,  // the system is not in a state to do this (no GPU, not loaded)
  kUnavailable,         // a peer or device cannot be reached right now
  kDeadlineExceeded,    // a blocking wait ran past its deadline
  kAborted,             // cancelled or aborted on purpose
  kUnauthenticated,     // missing or wrong credentials
  kUnimplemented,       // a valid request this build does not support
  kInternal,            // a library or system call failed for its own reasons
};

std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "DATA_LOSS: model.bin: truncated ..." ; "OK" for success.
  std::string to_string() const;
  // Prefixes the message with where the error was met ("loading rank 1: ...").
  Status with_context(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
inline Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A failed system call: "<what>: <strerror(errno)> (file.cc:42)". Use through
// TANDEM_ERRNO so every syscall error names where it was checked.
Status errno_status(std::string_view what, int err, const char* file, int line);
#define TANDEM_ERRNO(what) ::tandem::errno_status((what), errno, __FILE__, __LINE__)

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) std::abort();  // a Result error must be an error
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return const_cast<Result*>(this)->checked(); }
  T&& operator*() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }

 private:
  T& checked() {
    if (!ok()) std::abort();  // reading the value of an error is a programmer bug
    return std::get<T>(v_);
  }
  std::variant<T, Status> v_;
};

[[noreturn]] void check_failed(const char* expr, const char* file, int line, std::string_view detail);

}  // namespace tandem

#define TANDEM_CONCAT_INNER(a, b) a##b
#define TANDEM_CONCAT(a, b) TANDEM_CONCAT_INNER(a, b)

#define TANDEM_RETURN_IF_ERROR(expr)                   \
  do {                                                 \
    ::tandem::Status tandem_status_ = (expr);          \
    if (!tandem_status_.ok()) return tandem_status_;   \
  } while (0)

#define TANDEM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

// TANDEM_ASSIGN_OR_RETURN(auto x, make_x()); returns the error if make_x fails.
#define TANDEM_ASSIGN_OR_RETURN(lhs, expr) \
  TANDEM_ASSIGN_OR_RETURN_IMPL(TANDEM_CONCAT(tandem_result_, __LINE__), lhs, expr)

// Programmer-bug checks: abort with file:line. Never for input validation.
#define TANDEM_CHECK(cond)                                                     \
  do {                                                                         \
    if (!(cond)) ::tandem::check_failed(#cond, __FILE__, __LINE__, {});        \
  } while (0)
#define TANDEM_CHECK_MSG(cond, msg)                                            \
  do {                                                                         \
    if (!(cond)) ::tandem::check_failed(#cond, __FILE__, __LINE__, (msg));     \
  } while (0)
