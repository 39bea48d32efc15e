// Helpers shared by the ledger, node and API unit tests: temporary data
// directories, a genesis with fixed test keys, and builders for signed
// statements (ordinary, key registration, key revocation).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "codec/cbor.h"
#include "cose/statement.h"
#include "crypto/keys.h"
#include "ledger/genesis.h"
#include "ledger/ledger.h"
#include "ledger/policy.h"
#include "support/temp_dir.h"

namespace custos::testutil {

using custos::testutil::TempDir;  // tests/support/temp_dir.h

inline crypto::PrivateKey new_key(crypto::Algorithm alg = crypto::Algorithm::kEd25519) {
  auto key = crypto::PrivateKey::generate(alg);
  EXPECT_TRUE(key.ok()) << key.status().to_string();
  return std::move(key).value();
}

inline ledger::Genesis make_genesis(const std::vector<ledger::NamedKey>& admins,
                                    const std::vector<ledger::NamedKey>& nodes,
                                    const std::string& consortium = "custos test consortium",
                                    uint64_t created_ms = 1767225600000) {
  std::string json = ledger::genesis_json(consortium, created_ms, admins, nodes);
  auto g = ledger::parse_genesis(as_view(json));
  EXPECT_TRUE(g.ok()) << g.status().to_string();
  return std::move(g).value();
}

// One admin and one node key, made once per process: key generation is the
// slow part, and tests differ only in their data directories.
struct TestKeys {
  crypto::PrivateKey admin;
  crypto::PrivateKey node;
  ledger::Genesis genesis;
};

inline const TestKeys& test_keys() {
  static const TestKeys kKeys = [] {
    TestKeys k{new_key(), new_key(), {}};
    k.genesis =
        make_genesis({{"admin-1", k.admin.public_key()}}, {{"node-1", k.node.public_key()}});
    return k;
  }();
  return kKeys;
}

inline ledger::LedgerConfig ledger_config(const std::string& data_dir,
                                          const TestKeys& keys = test_keys()) {
  ledger::LedgerConfig c;
  c.data_dir = data_dir;
  c.node_name = "node-1";
  c.node_key = keys.node;
  c.genesis = keys.genesis;
  // Tests open many ledgers; keep each one small.
  c.storage.block_cache_bytes = 1 << 20;
  c.storage.write_buffer_bytes = 1 << 20;
  return c;
}

// What an ordinary statement carries besides key and sequence number.
struct Fields {
  std::string content_type = std::string(ledger::kTypeCbor);
  std::string issuer = "urn:custos:test:device";
  std::string subject = "test/subject";
  uint64_t issued_at_s = 1767225600;
  // Empty: a CBOR map naming the sequence number, so statements differ.
  Bytes payload;
};

inline Bytes sign(const crypto::PrivateKey& key, uint64_t seq, Fields f = {}) {
  cose::StatementHeader h;
  h.content_type = f.content_type;
  h.issuer = f.issuer;
  h.subject = f.subject;
  h.issued_at_s = f.issued_at_s;
  h.sequence = seq;
  if (f.payload.empty()) {
    cbor::Map m;
    m.emplace_back(cbor::text("seq"), cbor::Value::uint(seq));
    f.payload = cbor::encode(cbor::Value::map(std::move(m)));
  }
  return cose::sign_statement(key, h, f.payload);
}

inline Bytes registration(const crypto::PrivateKey& admin, uint64_t seq,
                          const crypto::PublicKey& key, uint32_t roles, const std::string& name) {
  Fields f;
  f.content_type = std::string(ledger::kTypeKeyRegister);
  f.issuer = "admin-1";
  f.subject = "keys/" + name;
  f.payload = cbor::encode(ledger::key_registration_payload({key.spki_der(), roles, name}));
  return sign(admin, seq, f);
}

inline Bytes revocation(const crypto::PrivateKey& admin, uint64_t seq, const Hash256& kid,
                        const std::string& reason = "test revocation") {
  Fields f;
  f.content_type = std::string(ledger::kTypeKeyRevoke);
  f.issuer = "admin-1";
  f.subject = "keys/revoke";
  f.payload = cbor::encode(ledger::key_revocation_payload({kid, reason}));
  return sign(admin, seq, f);
}

}  // namespace custos::testutil
