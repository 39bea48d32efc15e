// The genesis configuration: who administers the consortium and which node
// keys sign blocks and receipts. Written once (JSON), hashed into block 0.
#pragma once

#include <string>
#include <vector>

#include "crypto/keys.h"

namespace custos::ledger {

struct NamedKey {
  std::string name;
  crypto::PublicKey key;
};

struct Genesis {
  std::string consortium;
  uint64_t created_ms = 0;
  std::vector<NamedKey> admins;  // may register and revoke issuer keys
  std::vector<NamedKey> nodes;   // sign blocks and receipts
  Bytes json_bytes;              // the file exactly as read (hashed)
  Hash256 hash{};                // SHA-256 of json_bytes

  const NamedKey* find_node(const Hash256& kid) const;
};

inline constexpr size_t kGenesisBytesMax = 1 << 20;
inline constexpr size_t kGenesisKeysMax = 256;

// Parses and validates a genesis file: consortium name, at least one admin and
// one node, PEM keys that parse, no duplicate keys.
Result<Genesis> parse_genesis(ByteView json_bytes);
// Canonical JSON text for a new genesis (used by --dev and `custos init`).
std::string genesis_json(const std::string& consortium, uint64_t created_ms,
                         const std::vector<NamedKey>& admins, const std::vector<NamedKey>& nodes);

}  // namespace custos::ledger
