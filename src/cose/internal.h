// Helpers shared by the COSE parsers (statement, receipt). Not part of the
// public contract: include only from src/cose/*.cc.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "codec/cbor.h"
#include "core/bytes.h"
#include "core/status.h"

namespace custos::cose::internal {

// "a 16-byte bstr", "a text string", "a negative integer" ... for messages.
std::string describe(const cbor::Value& value);

// A header label or claim key, named for error messages. The text is built
// only when an error is reported, so successful parses do not allocate it.
struct Field {
  std::string_view where;  // "protected header"
  std::string_view noun;   // "label" or "claim"
  int64_t key;
  std::string_view name;  // "kid"
  // "protected header: label 4 (kid)"
  std::string text() const;
};

// kMalformed (or `code`) "<field text> <rule>".
Status field_error(const Field& field, std::string_view rule,
                   ErrorCode code = ErrorCode::kMalformed);

// Typed reads of required map entries: a missing entry or the wrong type is
// refused with the field named. Text must be non-empty UTF-8 (the decoder
// checks UTF-8) of at most `max_bytes` bytes (kTooLarge otherwise).
Result<const cbor::Value*> require(const cbor::Value& map, const Field& field);
Result<std::string> require_text(const cbor::Value& map, const Field& field, size_t max_bytes);
Result<uint64_t> require_uint(const cbor::Value& map, const Field& field);
Result<int64_t> require_int(const cbor::Value& map, const Field& field);
Result<Hash256> require_hash(const cbor::Value& map, const Field& field);
// The entry must be a map; returns it.
Result<const cbor::Value*> require_map(const cbor::Value& map, const Field& field);

// Refuses the first key of `map` not in `allowed`:
// "<where>: <noun> 99 is not allowed (allowed: <allowed_text>)".
Status only_keys(const cbor::Value& map, std::string_view where, std::string_view noun,
                 std::initializer_list<int64_t> allowed, std::string_view allowed_text);

Hash256 to_hash(const Bytes& bytes);  // bytes.size() must be 32

}  // namespace custos::cose::internal
