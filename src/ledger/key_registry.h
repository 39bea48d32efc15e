// The issuer keys known to the ledger and the stateful half of the
// registration policy. Used in log order by the sequencer and, replaying the
// log from genesis, by the audit: both must reach identical decisions.
// Not thread-safe; the Ledger publishes copies of changed records to readers.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>

#include "cose/statement.h"
#include "ledger/genesis.h"
#include "ledger/policy.h"

namespace custos::ledger {

inline constexpr uint64_t kNoIndex = ~uint64_t{0};

struct KeyState {
  crypto::PublicKey key;
  std::string name;
  uint32_t roles = 0;
  std::string org;                       // organisation id; empty for none
  uint64_t registered_index = kNoIndex;  // kNoIndex for genesis keys
  uint64_t revoked_index = kNoIndex;     // kNoIndex while valid
  uint64_t last_sequence = 0;
  Hash256 successor{};  // set when rotated: the key that replaced this one

  bool revoked() const { return revoked_index != kNoIndex; }
  Bytes encode() const;
  static Result<KeyState> decode(ByteView bytes);
};

struct SequenceOutcome {
  uint64_t expected = 0;  // last_sequence + 1 before this statement
  uint64_t got = 0;
  bool gap() const { return got != expected; }
};

class KeyRegistry {
 public:
  void add_genesis_admin(const NamedKey& admin);
  void put(const Hash256& kid, KeyState state) { keys_[kid] = std::move(state); }
  const KeyState* find(const Hash256& kid) const;
  size_t size() const { return keys_.size(); }
  const std::map<Hash256, KeyState>& all() const { return keys_; }

  // The signer's record if it may sign now: kUnknownKey, kRevokedKey, or
  // kReplay (sequence number not above the last accepted). Changes nothing.
  Result<const KeyState*> check_signer(const cose::StatementHeader& header) const;

  // Checks a statement already admitted (signature verified) against the
  // key's current state and, when it is accepted at log index `index`,
  // applies its effects: the key's sequence number, for key-management
  // statements the registration, revocation or rotation, and the extra key
  // effects of domain rules (keys registered or revoked with a statement).
  // Everything is checked before anything changes. Refusals: kUnknownKey,
  // kRevokedKey, kReplay, kConflict (key already registered / revoked),
  // kNotFound (revoking an unknown key), kPolicy (an org-admin revoking a key
  // of another organisation).
  Result<SequenceOutcome> apply(const cose::Statement& statement, uint64_t index,
                                const std::vector<KeyState>& register_keys = {},
                                const std::vector<Hash256>& revoke_keys = {});

  // Kids changed by apply() since the last call; clears the set.
  std::set<Hash256> take_changed();

 private:
  std::map<Hash256, KeyState> keys_;
  std::set<Hash256> changed_;
};

}  // namespace custos::ledger
