#include "core/status.h"

namespace custos {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kInvalidArgument:
      return "invalid-argument";
    case ErrorCode::kMalformed:
      return "malformed";
    case ErrorCode::kBadSignature:
      return "bad-signature";
    case ErrorCode::kUnknownKey:
      return "unknown-key";
    case ErrorCode::kRevokedKey:
      return "revoked-key";
    case ErrorCode::kReplay:
      return "replay";
    case ErrorCode::kTooLarge:
      return "too-large";
    case ErrorCode::kPolicy:
      return "policy";
    case ErrorCode::kNotFound:
      return "not-found";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kCorruption:
      return "corruption";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(error_code_name(code_)) + ": " + message_;
}

}  // namespace custos
