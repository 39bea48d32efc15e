// Status and Result<T>: how custos reports operating errors (bad input, I/O,
// policy refusals). Programmer errors use assert(); never assert on bytes that
// came from outside the process.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace custos {

// Stable error kinds. The API maps them to HTTP status codes and problem
// types; the CLI maps them to exit codes. Append only: the names are part of
// the documented problem-details "type" URIs.
enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,  // a caller-supplied value is out of range or malformed
  kMalformed,        // bytes do not parse (CBOR, COSE, PEM, JSON)
  kBadSignature,     // a signature does not verify
  kUnknownKey,       // kid not registered
  kRevokedKey,       // key revoked before this statement
  kReplay,           // sequence number not above the last accepted one
  kTooLarge,         // a named size limit was exceeded
  kPolicy,           // registration policy refused (role, content type, ...)
  kNotFound,         // the thing asked for does not exist
  kConflict,         // state does not allow the operation now
  kUnavailable,      // overloaded or shutting down; retry later
  kIo,               // the operating system or RocksDB failed
  kCorruption,       // persisted data fails its checksum or invariants
  kInternal,         // a bug; should not happen
};

// Short machine-readable name, e.g. "bad-signature".
const char* error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "bad-signature: signature does not verify under kid 1a2b..."
  std::string to_string() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status error(ErrorCode code, std::string message) {
  return Status(code, std::move(message));
}

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(data_).ok() && "Result built from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(data_);
  }
  T& value() & {
    assert(ok());
    return std::get<T>(data_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(data_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(data_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace custos

// Propagate a failed Status/Result from the enclosing function.
#define CUSTOS_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    auto custos_status_ = (expr);                    \
    if (!custos_status_.ok()) return custos_status_; \
  } while (0)

#define CUSTOS_CONCAT_INNER(a, b) a##b
#define CUSTOS_CONCAT(a, b) CUSTOS_CONCAT_INNER(a, b)
// Assign the value of a Result to lhs, or return its Status.
#define CUSTOS_ASSIGN_OR_RETURN(lhs, expr) \
  CUSTOS_ASSIGN_OR_RETURN_IMPL(CUSTOS_CONCAT(custos_result_, __LINE__), lhs, expr)
#define CUSTOS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
