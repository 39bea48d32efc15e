// Registration policy: which statements the ledger accepts, in two stages.
//  1. Stateless, on admission (any thread): structure, limits, known key,
//     signature, content type allowed for the signer's roles, payload shape.
//  2. Stateful, in log order (sequencer): key not revoked, sequence number
//     above the last accepted one for that key, key-management effects.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "codec/cbor.h"
#include "cose/statement.h"

namespace custos::ledger {

// Roles a key can hold (bit set). The first three are the ledger core's; the
// others are the actors of the health domain (docs/domain.md lists which
// statement types each may sign). A key belongs to at most one organisation.
enum Role : uint32_t {
  kRoleAdmin = 1u << 0,       // consortium administrator: registers organisations and any key
  kRoleIssuer = 1u << 1,      // posts generic statements (application/cbor)
  kRoleOpaque = 1u << 2,      // may also post statements of any content type
  kRoleOrgAdmin = 1u << 3,    // manages the keys of its own organisation
  kRolePrescriber = 1u << 4,  // medication orders
  kRolePharmacist = 1u << 5,  // pharmacy verification, drug libraries
  kRoleNurse = 1u << 6,       // pump programming
  kRoleBiomed = 1u << 7,      // biomedical engineer: devices, firmware, custody, maintenance
  kRoleGateway = 1u << 8,     // device gateway (forwards device statements; signs status)
  kRoleAuditor = 1u << 9,     // auditors and safety officers: advisories, record access
  kRoleDevice = 1u << 10,     // a medical device's own key
};
inline constexpr uint32_t kRoleCount = 11;
inline constexpr uint32_t kRolesAll = (1u << kRoleCount) - 1;
// Roles an organisation administrator may not hand out: they reach beyond
// the organisation.
inline constexpr uint32_t kRolesConsortiumOnly = kRoleAdmin | kRoleOpaque;

const char* role_name(Role role);
Result<uint32_t> roles_from_names(const std::vector<std::string>& names);
std::vector<std::string> role_names(uint32_t roles);

// Content types defined by custos itself.
inline constexpr std::string_view kTypeKeyRegister = "application/vnd.custos.key-register+cbor";
inline constexpr std::string_view kTypeKeyRevoke = "application/vnd.custos.key-revoke+cbor";
// Signed by the key being replaced: registers its successor with the same
// name, organisation and roles and revokes the old key at the same index.
inline constexpr std::string_view kTypeKeyRotate = "application/vnd.custos.key-rotate+cbor";
// A generic deterministic-CBOR payload (for example converted from JSON by
// `custos sign`).
inline constexpr std::string_view kTypeCbor = "application/cbor";

inline constexpr size_t kKeyNameBytesMax = 128;
inline constexpr size_t kOrgIdBytesMax = 64;
inline constexpr size_t kRevokeReasonBytesMax = 256;
inline constexpr size_t kSpkiBytesMax = 512;

// Payload of kTypeKeyRegister:
//   {"key": bstr SPKI DER, "roles": [+ tstr], "name": tstr, ? "org": tstr}
struct KeyRegistration {
  Bytes spki_der;
  uint32_t roles = 0;
  std::string name;
  std::string org;  // empty: no organisation
};
// Payload of kTypeKeyRotate: {"key": bstr SPKI DER (the successor), "reason": tstr}
struct KeyRotation {
  Bytes spki_der;
  std::string reason;
};
// Payload of kTypeKeyRevoke: {"kid": bstr 32, "reason": tstr}
struct KeyRevocation {
  Hash256 kid{};
  std::string reason;
};

cbor::Value key_registration_payload(const KeyRegistration& reg);
cbor::Value key_revocation_payload(const KeyRevocation& rev);
Result<KeyRegistration> parse_key_registration(ByteView payload);
Result<KeyRevocation> parse_key_revocation(ByteView payload);
cbor::Value key_rotation_payload(const KeyRotation& rot);
Result<KeyRotation> parse_key_rotation(ByteView payload);
// Organisation ids: 1 to kOrgIdBytesMax of [a-z0-9-.], starting with a letter
// or digit (they appear in URLs and FHIR references).
Status check_org_id(std::string_view org);

struct KeyState;

// Stage 1 checks of the core content types that depend only on the
// statement and its signer's record (signature and key lookup are done by
// the caller): who may sign key management, payload shape. Content types the
// core does not define are accepted only for an opaque signer unless
// `defined_elsewhere` (the domain rules check those). kPolicy or kMalformed
// with the field and rule named.
Status check_content(const cose::Statement& statement, const KeyState& signer,
                     bool defined_elsewhere = false);

}  // namespace custos::ledger
