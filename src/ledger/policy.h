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

// Roles a key can hold (bit set).
enum Role : uint32_t {
  kRoleAdmin = 1u << 0,   // registers and revokes keys
  kRoleIssuer = 1u << 1,  // posts statements of known content types
  kRoleOpaque = 1u << 2,  // may also post statements of any content type
};
inline constexpr uint32_t kRolesAll = kRoleAdmin | kRoleIssuer | kRoleOpaque;

const char* role_name(Role role);
Result<uint32_t> roles_from_names(const std::vector<std::string>& names);
std::vector<std::string> role_names(uint32_t roles);

// Content types defined by custos itself.
inline constexpr std::string_view kTypeKeyRegister = "application/vnd.custos.key-register+cbor";
inline constexpr std::string_view kTypeKeyRevoke = "application/vnd.custos.key-revoke+cbor";
// A generic deterministic-CBOR payload (for example converted from JSON by
// `custos sign`).
inline constexpr std::string_view kTypeCbor = "application/cbor";

inline constexpr size_t kKeyNameBytesMax = 128;
inline constexpr size_t kRevokeReasonBytesMax = 256;
inline constexpr size_t kSpkiBytesMax = 512;

// Payload of kTypeKeyRegister: {"key": bstr SPKI DER, "roles": [+ tstr], "name": tstr}
struct KeyRegistration {
  Bytes spki_der;
  uint32_t roles = 0;
  std::string name;
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

// Stage 1 checks that depend on the content type and the signer's roles
// (signature and key lookup are done by the caller). kPolicy or kMalformed
// with the field and rule named.
Status check_content(const cose::Statement& statement, uint32_t signer_roles);

}  // namespace custos::ledger
