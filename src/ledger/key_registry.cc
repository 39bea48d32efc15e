#include "ledger/key_registry.h"

namespace custos::ledger {

using cbor::Value;

Bytes KeyState::encode() const {
  cbor::Map m;
  m.emplace_back(cbor::text("spki"), Value::bytes(ByteView(key.spki_der())));
  m.emplace_back(cbor::text("name"), cbor::text(name));
  m.emplace_back(cbor::text("roles"), Value::uint(roles));
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

Result<SequenceOutcome> KeyRegistry::apply(const cose::Statement& statement, uint64_t index) {
  const cose::StatementHeader& h = statement.header;
  auto it = keys_.find(h.kid);
  if (it == keys_.end())
    return error(ErrorCode::kUnknownKey, "kid " + to_hex(h.kid) + " is not registered");
  KeyState& signer = it->second;
  if (signer.revoked()) {
    return error(ErrorCode::kRevokedKey, "kid " + to_hex(h.kid) + " was revoked at log index " +
                                             std::to_string(signer.revoked_index));
  }
  if (h.sequence <= signer.last_sequence) {
    return error(ErrorCode::kReplay,
                 "sequence " + std::to_string(h.sequence) + " is not above the last accepted " +
                     std::to_string(signer.last_sequence) + " for kid " + to_hex(h.kid));
  }
  // Key-management effects are checked before anything is changed, so a
  // refused statement leaves the registry as it was.
  if (h.content_type == kTypeKeyRegister) {
    CUSTOS_ASSIGN_OR_RETURN(KeyRegistration reg, parse_key_registration(statement.payload()));
    CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKey::from_spki_der(reg.spki_der));
    if (keys_.count(key.kid())) {
      return error(ErrorCode::kConflict, "kid " + to_hex(key.kid()) + " is already registered");
    }
    KeyState s{key, reg.name, reg.roles};
    s.registered_index = index;
    keys_.emplace(key.kid(), std::move(s));
    changed_.insert(key.kid());
  } else if (h.content_type == kTypeKeyRevoke) {
    CUSTOS_ASSIGN_OR_RETURN(KeyRevocation rev, parse_key_revocation(statement.payload()));
    auto target = keys_.find(rev.kid);
    if (target == keys_.end())
      return error(ErrorCode::kNotFound, "kid " + to_hex(rev.kid) + " is not registered");
    if (target->second.revoked()) {
      return error(ErrorCode::kConflict, "kid " + to_hex(rev.kid) + " is already revoked");
    }
    target->second.revoked_index = index;
    changed_.insert(rev.kid);
  }
  // `signer` stays valid: std::map references survive insertions.
  SequenceOutcome out{signer.last_sequence + 1, h.sequence};
  signer.last_sequence = h.sequence;
  changed_.insert(h.kid);
  return out;
}

std::set<Hash256> KeyRegistry::take_changed() {
  std::set<Hash256> out;
  out.swap(changed_);
  return out;
}

}  // namespace custos::ledger
