#include "cose/sign1.h"

#include <algorithm>
#include <cassert>

#include "cose/internal.h"

namespace custos::cose {

// ---------------------------------------------------------------------------
// Shared parsing helpers (cose/internal.h)

namespace internal {

std::string describe(const cbor::Value& value) {
  switch (value.type()) {
    case cbor::Type::kUnsigned:
      return "an unsigned integer";
    case cbor::Type::kNegative:
      return "a negative integer";
    case cbor::Type::kBytes:
      return "a " + std::to_string(value.as_bytes().size()) + "-byte bstr";
    case cbor::Type::kText:
      return "a text string";
    case cbor::Type::kArray:
      return "an array of " + std::to_string(value.as_array().size());
    case cbor::Type::kMap:
      return "a map";
    case cbor::Type::kTag:
      return "tag " + std::to_string(value.tag_number());
    case cbor::Type::kBool:
      return "a boolean";
    case cbor::Type::kNull:
      return "null";
    case cbor::Type::kUndefined:
      return "undefined";
    case cbor::Type::kFloat:
      return "a float";
  }
  return "an unknown item";
}

std::string Field::text() const {
  std::string out(where);
  out += ": ";
  out += noun;
  out += ' ';
  out += std::to_string(key);
  if (!name.empty()) {
    out += " (";
    out += name;
    out += ')';
  }
  return out;
}

Status field_error(const Field& field, std::string_view rule, ErrorCode code) {
  return error(code, field.text() + " " + std::string(rule));
}

Result<const cbor::Value*> require(const cbor::Value& map, const Field& field) {
  const cbor::Value* v = map.find(field.key);
  if (v == nullptr) return field_error(field, "is missing");
  return v;
}

Result<std::string> require_text(const cbor::Value& map, const Field& field, size_t max_bytes) {
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Value* v, require(map, field));
  if (!v->is(cbor::Type::kText)) {
    return field_error(field, "must be a text string, got " + describe(*v));
  }
  const std::string& s = v->as_text();
  if (s.empty()) return field_error(field, "must not be empty");
  if (s.size() > max_bytes) {
    return field_error(
        field,
        "is " + std::to_string(s.size()) + " bytes; the limit is " + std::to_string(max_bytes),
        ErrorCode::kTooLarge);
  }
  return s;
}

Result<uint64_t> require_uint(const cbor::Value& map, const Field& field) {
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Value* v, require(map, field));
  if (!v->is(cbor::Type::kUnsigned)) {
    return field_error(field, "must be an unsigned integer, got " + describe(*v));
  }
  return v->as_uint();
}

Result<int64_t> require_int(const cbor::Value& map, const Field& field) {
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Value* v, require(map, field));
  std::optional<int64_t> i = v->is_integer() ? v->as_int64() : std::nullopt;
  if (!i) return field_error(field, "must be an integer, got " + describe(*v));
  return *i;
}

Result<Hash256> require_hash(const cbor::Value& map, const Field& field) {
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Value* v, require(map, field));
  if (!v->is(cbor::Type::kBytes) || v->as_bytes().size() != 32) {
    return field_error(field, "must be a 32-byte bstr, got " + describe(*v));
  }
  return to_hash(v->as_bytes());
}

Result<const cbor::Value*> require_map(const cbor::Value& map, const Field& field) {
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Value* v, require(map, field));
  if (!v->is(cbor::Type::kMap)) return field_error(field, "must be a map, got " + describe(*v));
  return v;
}

Status only_keys(const cbor::Value& map, std::string_view where, std::string_view noun,
                 std::initializer_list<int64_t> allowed, std::string_view allowed_text) {
  for (const auto& [key, value] : map.as_map()) {
    std::optional<int64_t> k = key.is_integer() ? key.as_int64() : std::nullopt;
    if (k && std::find(allowed.begin(), allowed.end(), *k) != allowed.end()) continue;
    std::string name = k ? std::to_string(*k) : cbor::diagnostic(key);
    return error(ErrorCode::kMalformed,
                 std::string(where) + ": " + std::string(noun) + " " + name +
                     " is not allowed (allowed: " + std::string(allowed_text) + ")");
  }
  return Status();
}

Hash256 to_hash(const Bytes& bytes) {
  assert(bytes.size() == 32);
  Hash256 h;
  std::copy(bytes.begin(), bytes.end(), h.begin());
  return h;
}

}  // namespace internal

// ---------------------------------------------------------------------------
// COSE_Sign1

namespace {

using internal::describe;

Status malformed(std::string message) {
  return error(ErrorCode::kMalformed, std::move(message));
}

// RFC 9052 section 3: labels are integers or text strings.
Status check_labels(const cbor::Value& map, std::string_view where) {
  for (const auto& [key, value] : map.as_map()) {
    if (!key.is_integer() && !key.is(cbor::Type::kText)) {
      return malformed(std::string(where) + ": label " + cbor::diagnostic(key) +
                       " must be an integer or a text string");
    }
  }
  return Status();
}

// RFC 9052 section 3: a label must not appear in both buckets, or a verifier
// could be shown a different value than the one the signer protected.
Status check_disjoint(const cbor::Value& protected_map, const cbor::Value& unprotected) {
  for (const auto& [key, value] : unprotected.as_map()) {
    for (const auto& [pkey, pvalue] : protected_map.as_map()) {
      if (key == pkey) {
        return malformed("unprotected header: label " + cbor::diagnostic(key) +
                         " also appears in the protected header");
      }
    }
  }
  return Status();
}

Result<cbor::Value> decode_protected(const Bytes& bytes) {
  if (bytes.size() > limits::kProtectedHeaderBytesMax) {
    return error(ErrorCode::kTooLarge, "protected header is " + std::to_string(bytes.size()) +
                                           " bytes; the limit is " +
                                           std::to_string(limits::kProtectedHeaderBytesMax));
  }
  // RFC 9052: a zero-length bstr stands for the empty map.
  if (bytes.empty()) return cbor::Value::map({});
  auto decoded = cbor::decode(bytes);  // deterministic: these bytes are signed
  if (!decoded.ok()) {
    return malformed("protected header is not deterministic CBOR: " + decoded.status().message());
  }
  if (!decoded->is(cbor::Type::kMap)) {
    return malformed("protected header must be a map, got " + describe(*decoded));
  }
  CUSTOS_RETURN_IF_ERROR(check_labels(*decoded, "protected header"));
  return std::move(decoded).value();
}

Status check_unprotected(const cbor::Value& unprotected) {
  if (!unprotected.is(cbor::Type::kMap)) {
    return malformed("unprotected header must be a map, got " + describe(unprotected));
  }
  if (unprotected.as_map().size() > limits::kUnprotectedHeaderEntriesMax) {
    return error(ErrorCode::kTooLarge, "unprotected header has " +
                                           std::to_string(unprotected.as_map().size()) +
                                           " entries; the limit is " +
                                           std::to_string(limits::kUnprotectedHeaderEntriesMax));
  }
  return check_labels(unprotected, "unprotected header");
}

// Writes a CBOR head (major type + argument) in its shortest form.
void put_head(Bytes& out, uint8_t major, uint64_t n) {
  const uint8_t m = static_cast<uint8_t>(major << 5);
  if (n < 24) {
    out.push_back(static_cast<uint8_t>(m | n));
    return;
  }
  int width = n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffff ? 4 : 8;
  out.push_back(static_cast<uint8_t>(m | (width == 1   ? 24
                                          : width == 2 ? 25
                                          : width == 4 ? 26
                                                       : 27)));
  for (int shift = (width - 1) * 8; shift >= 0; shift -= 8) {
    out.push_back(static_cast<uint8_t>(n >> shift));
  }
}

void put_bstr(Bytes& out, ByteView b) {
  put_head(out, 2, b.size());
  out.insert(out.end(), b.begin(), b.end());
}

}  // namespace

Result<Sign1> parse_sign1(ByteView input, size_t max_bytes) {
  if (input.size() > max_bytes) {
    return error(ErrorCode::kTooLarge, "COSE_Sign1 is " + std::to_string(input.size()) +
                                           " bytes; the limit is " + std::to_string(max_bytes));
  }
  cbor::DecodeOptions options;
  options.require_deterministic = false;  // only the protected header is signed
  auto outer = cbor::decode(input, options);
  if (!outer.ok())
    return malformed("COSE_Sign1 is not well-formed CBOR: " + outer.status().message());

  const cbor::Value* item = &*outer;
  if (item->is(cbor::Type::kTag)) {
    if (item->tag_number() != kTagSign1) {
      return malformed("COSE_Sign1: tag " + std::to_string(item->tag_number()) +
                       " is not 18 (COSE_Sign1)");
    }
    item = &item->tag_content();
  }
  if (!item->is(cbor::Type::kArray) || item->as_array().size() != 4) {
    return malformed(
        "COSE_Sign1 must be an array of 4 (protected, unprotected, payload, signature), got " +
        describe(*item));
  }
  const cbor::Array& parts = item->as_array();
  if (!parts[0].is(cbor::Type::kBytes)) {
    return malformed("COSE_Sign1 protected header must be a bstr, got " + describe(parts[0]));
  }
  if (!parts[2].is(cbor::Type::kBytes) && !parts[2].is(cbor::Type::kNull)) {
    return malformed("COSE_Sign1 payload must be a bstr or nil, got " + describe(parts[2]));
  }
  if (!parts[3].is(cbor::Type::kBytes)) {
    return malformed("COSE_Sign1 signature must be a bstr, got " + describe(parts[3]));
  }

  Sign1 sign1;
  sign1.protected_bytes = parts[0].as_bytes();
  CUSTOS_ASSIGN_OR_RETURN(sign1.protected_map, decode_protected(sign1.protected_bytes));
  CUSTOS_RETURN_IF_ERROR(check_unprotected(parts[1]));
  CUSTOS_RETURN_IF_ERROR(check_disjoint(sign1.protected_map, parts[1]));
  sign1.unprotected = parts[1];
  if (parts[2].is(cbor::Type::kBytes)) sign1.payload = parts[2].as_bytes();
  sign1.signature = parts[3].as_bytes();
  return sign1;
}

Bytes sig_structure(ByteView protected_bytes, ByteView external_aad, ByteView payload) {
  // Written directly rather than through cbor::Value so the payload (up to
  // 64 KiB) is copied once; the layout is fixed by RFC 9052 section 4.4.
  static constexpr std::string_view kContext = "Signature1";
  Bytes out;
  out.reserve(32 + protected_bytes.size() + external_aad.size() + payload.size());
  put_head(out, 4, 4);
  put_head(out, 3, kContext.size());
  out.insert(out.end(), kContext.begin(), kContext.end());
  put_bstr(out, protected_bytes);
  put_bstr(out, external_aad);
  put_bstr(out, payload);
  return out;
}

Bytes encode_sign1(const Sign1& sign1) {
  cbor::Array parts;
  parts.reserve(4);
  parts.push_back(cbor::Value::bytes(sign1.protected_bytes));
  // A default-constructed Sign1 holds null here; write the empty map.
  parts.push_back(sign1.unprotected.is(cbor::Type::kNull) ? cbor::Value::map({})
                                                          : sign1.unprotected);
  parts.push_back(sign1.payload ? cbor::Value::bytes(*sign1.payload) : cbor::Value::null());
  parts.push_back(cbor::Value::bytes(sign1.signature));
  return cbor::encode(cbor::Value::tag(kTagSign1, cbor::Value::array(std::move(parts))));
}

}  // namespace custos::cose
