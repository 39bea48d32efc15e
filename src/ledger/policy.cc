#include "ledger/policy.h"

#include "crypto/keys.h"

namespace custos::ledger {

using cbor::Value;

const char* role_name(Role role) {
  switch (role) {
    case kRoleAdmin:
      return "admin";
    case kRoleIssuer:
      return "issuer";
    case kRoleOpaque:
      return "opaque";
  }
  return "?";
}

Result<uint32_t> roles_from_names(const std::vector<std::string>& names) {
  uint32_t roles = 0;
  for (const auto& n : names) {
    if (n == "admin")
      roles |= kRoleAdmin;
    else if (n == "issuer")
      roles |= kRoleIssuer;
    else if (n == "opaque")
      roles |= kRoleOpaque;
    else
      return error(ErrorCode::kInvalidArgument, "unknown role '" + n + "' (admin, issuer, opaque)");
  }
  if (roles == 0) return error(ErrorCode::kInvalidArgument, "a key needs at least one role");
  return roles;
}

std::vector<std::string> role_names(uint32_t roles) {
  std::vector<std::string> out;
  for (Role r : {kRoleAdmin, kRoleIssuer, kRoleOpaque}) {
    if (roles & r) out.emplace_back(role_name(r));
  }
  return out;
}

cbor::Value key_registration_payload(const KeyRegistration& reg) {
  cbor::Array roles;
  for (const auto& n : role_names(reg.roles)) roles.push_back(cbor::text(n));
  cbor::Map m;
  m.emplace_back(cbor::text("key"), Value::bytes(ByteView(reg.spki_der)));
  m.emplace_back(cbor::text("name"), cbor::text(reg.name));
  m.emplace_back(cbor::text("roles"), Value::array(std::move(roles)));
  return Value::map(std::move(m));
}

cbor::Value key_revocation_payload(const KeyRevocation& rev) {
  cbor::Map m;
  m.emplace_back(cbor::text("kid"), Value::bytes(ByteView(rev.kid)));
  m.emplace_back(cbor::text("reason"), cbor::text(rev.reason));
  return Value::map(std::move(m));
}

namespace {
Result<std::string> text_field(const Value& map, const char* key, size_t max_bytes,
                               const char* what) {
  const Value* v = map.find(key);
  if (!v || !v->is(cbor::Type::kText)) {
    return error(ErrorCode::kMalformed,
                 std::string(what) + ": '" + key + "' must be a text string");
  }
  if (v->as_text().size() > max_bytes) {
    return error(ErrorCode::kTooLarge, std::string(what) + ": '" + key + "' longer than " +
                                           std::to_string(max_bytes) + " bytes");
  }
  return v->as_text();
}

Status only_fields(const Value& map, std::initializer_list<const char*> allowed, const char* what) {
  for (const auto& [k, v] : map.as_map()) {
    bool ok = false;
    if (k.is(cbor::Type::kText)) {
      for (const char* a : allowed) ok = ok || k.as_text() == a;
    }
    if (!ok)
      return error(ErrorCode::kMalformed,
                   std::string(what) + ": unexpected field " + cbor::diagnostic(k));
  }
  return Status();
}
}  // namespace

Result<KeyRegistration> parse_key_registration(ByteView payload) {
  constexpr const char* kWhat = "key registration";
  CUSTOS_ASSIGN_OR_RETURN(Value v, cbor::decode(payload));
  if (!v.is(cbor::Type::kMap))
    return error(ErrorCode::kMalformed, "key registration: payload must be a map");
  CUSTOS_RETURN_IF_ERROR(only_fields(v, {"key", "name", "roles"}, kWhat));
  KeyRegistration reg;
  const Value* key = v.find("key");
  if (!key || !key->is(cbor::Type::kBytes) || key->as_bytes().size() > kSpkiBytesMax) {
    return error(ErrorCode::kMalformed,
                 "key registration: 'key' must be a bstr (SPKI DER) of at most 512 bytes");
  }
  auto parsed = crypto::PublicKey::from_spki_der(key->as_bytes());
  if (!parsed.ok())
    return error(ErrorCode::kMalformed, "key registration: 'key': " + parsed.status().message());
  reg.spki_der = key->as_bytes();
  CUSTOS_ASSIGN_OR_RETURN(reg.name, text_field(v, "name", kKeyNameBytesMax, kWhat));
  const Value* roles = v.find("roles");
  if (!roles || !roles->is(cbor::Type::kArray) || roles->as_array().empty() ||
      roles->as_array().size() > 8) {
    return error(ErrorCode::kMalformed,
                 "key registration: 'roles' must be an array of 1 to 8 role names");
  }
  std::vector<std::string> names;
  for (const auto& r : roles->as_array()) {
    if (!r.is(cbor::Type::kText))
      return error(ErrorCode::kMalformed, "key registration: roles must be text");
    names.push_back(r.as_text());
  }
  auto bits = roles_from_names(names);
  if (!bits.ok())
    return error(ErrorCode::kMalformed, "key registration: " + bits.status().message());
  reg.roles = *bits;
  return reg;
}

Result<KeyRevocation> parse_key_revocation(ByteView payload) {
  constexpr const char* kWhat = "key revocation";
  CUSTOS_ASSIGN_OR_RETURN(Value v, cbor::decode(payload));
  if (!v.is(cbor::Type::kMap))
    return error(ErrorCode::kMalformed, "key revocation: payload must be a map");
  CUSTOS_RETURN_IF_ERROR(only_fields(v, {"kid", "reason"}, kWhat));
  KeyRevocation rev;
  const Value* kid = v.find("kid");
  if (!kid || !kid->is(cbor::Type::kBytes) || kid->as_bytes().size() != 32) {
    return error(ErrorCode::kMalformed, "key revocation: 'kid' must be a 32-byte bstr");
  }
  std::copy(kid->as_bytes().begin(), kid->as_bytes().end(), rev.kid.begin());
  CUSTOS_ASSIGN_OR_RETURN(rev.reason, text_field(v, "reason", kRevokeReasonBytesMax, kWhat));
  return rev;
}

Status check_content(const cose::Statement& statement, uint32_t signer_roles) {
  const std::string& type = statement.header.content_type;
  if (type == kTypeKeyRegister || type == kTypeKeyRevoke) {
    if (!(signer_roles & kRoleAdmin)) {
      return error(ErrorCode::kPolicy,
                   "content type " + type + " may only be signed by an admin key");
    }
    if (type == kTypeKeyRegister) return parse_key_registration(statement.payload()).status();
    return parse_key_revocation(statement.payload()).status();
  }
  if (type == kTypeCbor) {
    if (!(signer_roles & (kRoleIssuer | kRoleOpaque))) {
      return error(ErrorCode::kPolicy, "the signing key has no issuer role");
    }
    auto decoded = cbor::decode(statement.payload());
    if (!decoded.ok())
      return error(ErrorCode::kMalformed, "payload: " + decoded.status().message());
    return Status();
  }
  if (signer_roles & kRoleOpaque) return Status();
  return error(ErrorCode::kPolicy,
               "unknown content type '" + type + "' and the signing key has no opaque role");
}

}  // namespace custos::ledger
