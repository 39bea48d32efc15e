#include "ledger/key_registry.h"

#include <algorithm>
#include <optional>

namespace custos::ledger {

using cbor::Value;

Bytes KeyState::encode() const {
  cbor::Map m;
  m.emplace_back(cbor::text("spki"), Value::bytes(ByteView(key.spki_der())));
  m.emplace_back(cbor::text("name"), cbor::text(name));
  m.emplace_back(cbor::text("roles"), Value::uint(roles));
  if (!org.empty()) m.emplace_back(cbor::text("org"), cbor::text(org));
  if (successor != Hash256{}) m.emplace_back(cbor::text("next"), Value::bytes(ByteView(successor)));
  m.emplace_back(cbor::text("seq"), Value::uint(last_sequence));
  if (registered_index != kNoIndex)
    m.emplace_back(cbor::text("reg"), Value::uint(registered_index));
  if (revoked_index != kNoIndex) m.emplace_back(cbor::text("rev"), Value::uint(revoked_index));
  return cbor::encode(Value::map(std::move(m)));
}

Result<KeyState> KeyState::decode(ByteView bytes) {
  auto corrupt = [](const char* what) {
    return error(ErrorCode::kCorruption, std::string("key record: ") + what);
  };
  CUSTOS_ASSIGN_OR_RETURN(Value v, cbor::decode(bytes));
  const Value* spki = v.find("spki");
  const Value* name = v.find("name");
  const Value* roles = v.find("roles");
  const Value* seq = v.find("seq");
  if (!spki || !spki->is(cbor::Type::kBytes)) return corrupt("spki");
  if (!name || !name->is(cbor::Type::kText)) return corrupt("name");
  if (!roles || !roles->is(cbor::Type::kUnsigned)) return corrupt("roles");
  if (!seq || !seq->is(cbor::Type::kUnsigned)) return corrupt("seq");
  auto key = crypto::PublicKey::from_spki_der(spki->as_bytes());
  if (!key.ok()) return corrupt("key does not parse");
  KeyState s{std::move(key).value(), name->as_text(), static_cast<uint32_t>(roles->as_uint())};
  s.last_sequence = seq->as_uint();
  if (const Value* r = v.find("reg"); r && r->is(cbor::Type::kUnsigned))
    s.registered_index = r->as_uint();
  if (const Value* r = v.find("rev"); r && r->is(cbor::Type::kUnsigned))
    s.revoked_index = r->as_uint();
  if (const Value* o = v.find("org"); o && o->is(cbor::Type::kText)) s.org = o->as_text();
  if (const Value* n = v.find("next")) {
    if (!n->is(cbor::Type::kBytes) || n->as_bytes().size() != 32) return corrupt("next");
    std::copy(n->as_bytes().begin(), n->as_bytes().end(), s.successor.begin());
  }
  return s;
}

void KeyRegistry::add_genesis_admin(const NamedKey& admin) {
  KeyState s{admin.key, admin.name, kRoleAdmin | kRoleIssuer};
  keys_[admin.key.kid()] = s;
  changed_.insert(admin.key.kid());
}

const KeyState* KeyRegistry::find(const Hash256& kid) const {
  auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : &it->second;
}

Result<const KeyState*> KeyRegistry::check_signer(const cose::StatementHeader& h) const {
  auto it = keys_.find(h.kid);
  if (it == keys_.end())
    return error(ErrorCode::kUnknownKey, "kid " + to_hex(h.kid) + " is not registered");
  const KeyState& signer = it->second;
  if (signer.revoked()) {
    return error(ErrorCode::kRevokedKey, "kid " + to_hex(h.kid) + " was revoked at log index " +
                                             std::to_string(signer.revoked_index));
  }
  if (h.sequence <= signer.last_sequence) {
    return error(ErrorCode::kReplay,
                 "sequence " + std::to_string(h.sequence) + " is not above the last accepted " +
                     std::to_string(signer.last_sequence) + " for kid " + to_hex(h.kid));
  }
  return &signer;
}

namespace {
// What one statement does to the registry, gathered and checked before any
// change is made, so a refused statement leaves the registry as it was.
struct KeyEffects {
  std::vector<std::pair<Hash256, KeyState>> add;
  std::vector<Hash256> revoke;
  std::optional<std::pair<Hash256, Hash256>> successor;  // old kid -> new kid
};
}  // namespace

Result<SequenceOutcome> KeyRegistry::apply(const cose::Statement& statement, uint64_t index,
                                           const std::vector<KeyState>& register_keys,
                                           const std::vector<Hash256>& revoke_keys) {
  const cose::StatementHeader& h = statement.header;
  CUSTOS_ASSIGN_OR_RETURN(const KeyState* signer_ptr, check_signer(h));
  const KeyState& signer = *signer_ptr;
  KeyEffects fx;
  const auto add = [&](KeyState s) -> Status {
    const Hash256 kid = s.key.kid();
    if (keys_.count(kid))
      return error(ErrorCode::kConflict, "kid " + to_hex(kid) + " is already registered");
    for (const auto& [k, _] : fx.add) {
      if (k == kid)
        return error(ErrorCode::kConflict, "kid " + to_hex(kid) + " is registered twice");
    }
    s.registered_index = index;
    s.revoked_index = kNoIndex;
    s.last_sequence = 0;
    fx.add.emplace_back(kid, std::move(s));
    return Status();
  };
  const auto revoke = [&](const Hash256& kid, bool same_org_only) -> Status {
    auto target = keys_.find(kid);
    if (target == keys_.end())
      return error(ErrorCode::kNotFound, "kid " + to_hex(kid) + " is not registered");
    if (target->second.revoked())
      return error(ErrorCode::kConflict, "kid " + to_hex(kid) + " is already revoked");
    if (same_org_only && (signer.org.empty() || target->second.org != signer.org)) {
      return error(ErrorCode::kPolicy,
                   "an org-admin key may only revoke keys of its own organisation");
    }
    fx.revoke.push_back(kid);
    return Status();
  };

  if (h.content_type == kTypeKeyRegister) {
    CUSTOS_ASSIGN_OR_RETURN(KeyRegistration reg, parse_key_registration(statement.payload()));
    CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKey::from_spki_der(reg.spki_der));
    KeyState s{key, reg.name, reg.roles};
    s.org = reg.org;
    CUSTOS_RETURN_IF_ERROR(add(std::move(s)));
  } else if (h.content_type == kTypeKeyRevoke) {
    CUSTOS_ASSIGN_OR_RETURN(KeyRevocation rev, parse_key_revocation(statement.payload()));
    CUSTOS_RETURN_IF_ERROR(revoke(rev.kid, !(signer.roles & kRoleAdmin)));
  } else if (h.content_type == kTypeKeyRotate) {
    CUSTOS_ASSIGN_OR_RETURN(KeyRotation rot, parse_key_rotation(statement.payload()));
    CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKey::from_spki_der(rot.spki_der));
    KeyState s{key, signer.name, signer.roles};
    s.org = signer.org;
    CUSTOS_RETURN_IF_ERROR(add(std::move(s)));
    CUSTOS_RETURN_IF_ERROR(revoke(h.kid, false));
    fx.successor = std::make_pair(h.kid, key.kid());
  }
  for (const KeyState& s : register_keys) CUSTOS_RETURN_IF_ERROR(add(s));
  for (const Hash256& kid : revoke_keys) CUSTOS_RETURN_IF_ERROR(revoke(kid, false));

  // Checked; now apply. `signer` stays valid: std::map references survive
  // insertions.
  for (auto& [kid, s] : fx.add) {
    keys_.emplace(kid, std::move(s));
    changed_.insert(kid);
  }
  for (const Hash256& kid : fx.revoke) {
    keys_.find(kid)->second.revoked_index = index;
    changed_.insert(kid);
  }
  if (fx.successor) keys_.find(fx.successor->first)->second.successor = fx.successor->second;
  KeyState& mutable_signer = keys_.find(h.kid)->second;
  SequenceOutcome out{mutable_signer.last_sequence + 1, h.sequence};
  mutable_signer.last_sequence = h.sequence;
  changed_.insert(h.kid);
  return out;
}

std::set<Hash256> KeyRegistry::take_changed() {
  std::set<Hash256> out;
  out.swap(changed_);
  return out;
}

}  // namespace custos::ledger
