#include "ledger/policy.h"

#include <iterator>

#include "crypto/keys.h"
#include "ledger/key_registry.h"

namespace custos::ledger {

using cbor::Value;

namespace {
struct RoleName {
  Role role;
  const char* name;
};
constexpr RoleName kRoleNames[] = {
    {kRoleAdmin, "admin"},        {kRoleIssuer, "issuer"},         {kRoleOpaque, "opaque"},
    {kRoleOrgAdmin, "org-admin"}, {kRolePrescriber, "prescriber"}, {kRolePharmacist, "pharmacist"},
    {kRoleNurse, "nurse"},        {kRoleBiomed, "biomed"},         {kRoleGateway, "gateway"},
    {kRoleAuditor, "auditor"},    {kRoleDevice, "device"},
};
static_assert(std::size(kRoleNames) == kRoleCount);

std::string all_role_names() {
  std::string out;
  for (const auto& r : kRoleNames) out += std::string(out.empty() ? "" : ", ") + r.name;
  return out;
}
}  // namespace

const char* role_name(Role role) {
  for (const auto& r : kRoleNames) {
    if (r.role == role) return r.name;
  }
  return "?";
}

Result<uint32_t> roles_from_names(const std::vector<std::string>& names) {
  uint32_t roles = 0;
  for (const auto& n : names) {
    uint32_t bit = 0;
    for (const auto& r : kRoleNames) {
      if (n == r.name) bit = r.role;
    }
    if (bit == 0)
      return error(ErrorCode::kInvalidArgument,
                   "unknown role '" + n + "' (" + all_role_names() + ")");
    roles |= bit;
  }
  if (roles == 0) return error(ErrorCode::kInvalidArgument, "a key needs at least one role");
  return roles;
}

std::vector<std::string> role_names(uint32_t roles) {
  std::vector<std::string> out;
  for (const auto& r : kRoleNames) {
    if (roles & r.role) out.emplace_back(r.name);
  }
  return out;
}

Status check_org_id(std::string_view org) {
  if (org.empty() || org.size() > kOrgIdBytesMax) {
    return error(ErrorCode::kMalformed,
                 "organisation id must be 1 to " + std::to_string(kOrgIdBytesMax) + " characters");
  }
  for (size_t i = 0; i < org.size(); ++i) {
    const char c = org[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '-' && c != '.'))) {
      return error(ErrorCode::kMalformed, "organisation id '" + std::string(org) +
                                              "' may hold only a-z, 0-9, '-' and '.', "
                                              "starting with a letter or digit");
    }
  }
  return Status();
}

cbor::Value key_registration_payload(const KeyRegistration& reg) {
  cbor::Array roles;
  for (const auto& n : role_names(reg.roles)) roles.push_back(cbor::text(n));
  cbor::Map m;
  m.emplace_back(cbor::text("key"), Value::bytes(ByteView(reg.spki_der)));
  m.emplace_back(cbor::text("name"), cbor::text(reg.name));
  if (!reg.org.empty()) m.emplace_back(cbor::text("org"), cbor::text(reg.org));
  m.emplace_back(cbor::text("roles"), Value::array(std::move(roles)));
  return Value::map(std::move(m));
}

cbor::Value key_rotation_payload(const KeyRotation& rot) {
  cbor::Map m;
  m.emplace_back(cbor::text("key"), Value::bytes(ByteView(rot.spki_der)));
  m.emplace_back(cbor::text("reason"), cbor::text(rot.reason));
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

// A public key field: a bstr holding SPKI DER that parses as a supported key.
Result<Bytes> spki_field(const Value& map, const char* what) {
  const Value* key = map.find("key");
  if (!key || !key->is(cbor::Type::kBytes) || key->as_bytes().size() > kSpkiBytesMax) {
    return error(ErrorCode::kMalformed, std::string(what) +
                                            ": 'key' must be a bstr (SPKI DER) of at most " +
                                            std::to_string(kSpkiBytesMax) + " bytes");
  }
  auto parsed = crypto::PublicKey::from_spki_der(key->as_bytes());
  if (!parsed.ok())
    return error(ErrorCode::kMalformed,
                 std::string(what) + ": 'key': " + parsed.status().message());
  return key->as_bytes();
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
  CUSTOS_RETURN_IF_ERROR(only_fields(v, {"key", "name", "org", "roles"}, kWhat));
  KeyRegistration reg;
  CUSTOS_ASSIGN_OR_RETURN(reg.spki_der, spki_field(v, kWhat));
  CUSTOS_ASSIGN_OR_RETURN(reg.name, text_field(v, "name", kKeyNameBytesMax, kWhat));
  if (v.find("org")) {
    CUSTOS_ASSIGN_OR_RETURN(reg.org, text_field(v, "org", kOrgIdBytesMax, kWhat));
    Status org_ok = check_org_id(reg.org);
    if (!org_ok.ok())
      return error(ErrorCode::kMalformed, "key registration: 'org': " + org_ok.message());
  }
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

Result<KeyRotation> parse_key_rotation(ByteView payload) {
  constexpr const char* kWhat = "key rotation";
  CUSTOS_ASSIGN_OR_RETURN(Value v, cbor::decode(payload));
  if (!v.is(cbor::Type::kMap))
    return error(ErrorCode::kMalformed, "key rotation: payload must be a map");
  CUSTOS_RETURN_IF_ERROR(only_fields(v, {"key", "reason"}, kWhat));
  KeyRotation rot;
  CUSTOS_ASSIGN_OR_RETURN(rot.spki_der, spki_field(v, kWhat));
  CUSTOS_ASSIGN_OR_RETURN(rot.reason, text_field(v, "reason", kRevokeReasonBytesMax, kWhat));
  return rot;
}

namespace {
Status check_key_registration(const cose::Statement& statement, const KeyState& signer) {
  CUSTOS_ASSIGN_OR_RETURN(KeyRegistration reg, parse_key_registration(statement.payload()));
  if (signer.roles & kRoleAdmin) return Status();
  // An organisation administrator: only keys of its own organisation, and
  // never roles that reach beyond it.
  if (signer.org.empty() || reg.org != signer.org) {
    return error(ErrorCode::kPolicy,
                 "an org-admin key may only register keys of its own organisation '" + signer.org +
                     "' ('org' is '" + reg.org + "')");
  }
  if (reg.roles & kRolesConsortiumOnly) {
    return error(ErrorCode::kPolicy,
                 "roles admin and opaque can only be granted by a consortium administrator");
  }
  return Status();
}
}  // namespace

Status check_content(const cose::Statement& statement, const KeyState& signer,
                     bool defined_elsewhere) {
  const std::string& type = statement.header.content_type;
  const uint32_t signer_roles = signer.roles;
  if (type == kTypeKeyRegister || type == kTypeKeyRevoke) {
    if (!(signer_roles & (kRoleAdmin | kRoleOrgAdmin))) {
      return error(ErrorCode::kPolicy,
                   "content type " + type + " may only be signed by an admin or org-admin key");
    }
    if (type == kTypeKeyRegister) return check_key_registration(statement, signer);
    return parse_key_revocation(statement.payload()).status();
  }
  if (type == kTypeKeyRotate) return parse_key_rotation(statement.payload()).status();
  if (type == kTypeCbor) {
    if (!(signer_roles & (kRoleIssuer | kRoleOpaque))) {
      return error(ErrorCode::kPolicy, "the signing key has no issuer role");
    }
    auto decoded = cbor::decode(statement.payload());
    if (!decoded.ok())
      return error(ErrorCode::kMalformed, "payload: " + decoded.status().message());
    return Status();
  }
  if (defined_elsewhere || (signer_roles & kRoleOpaque)) return Status();
  return error(ErrorCode::kPolicy,
               "unknown content type '" + type + "' and the signing key has no opaque role");
}

}  // namespace custos::ledger
