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
  uint64_t registered_index = kNoIndex;  // kNoIndex for genesis keys
  uint64_t revoked_index = kNoIndex;     // kNoIndex while valid
  uint64_t last_sequence = 0;

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

  // Checks a statement already admitted (signature verified) against the
  // key's current state and, when it is accepted at log index `index`,
  // applies its effects: the key's sequence number, and for key-management
  // statements the registration or revocation. Refusals: kUnknownKey,
  // kRevokedKey, kReplay, kConflict (key already registered / revoked),
  // kNotFound (revoking an unknown key).
  Result<SequenceOutcome> apply(const cose::Statement& statement, uint64_t index);

  // Kids changed by apply() since the last call; clears the set.
  std::set<Hash256> take_changed();

 private:
  std::map<Hash256, KeyState> keys_;
  std::set<Hash256> changed_;
};

}  // namespace custos::ledger
