// Ledger over a real RocksDB in a temporary directory: admission refusals,
// block appends and the stateful policy (replays, gaps, key registration and
// revocation), receipts, checkpoints, consistency proofs, paged queries,
// restart, and the audit, including its detection of tampered data.
#include "ledger/ledger.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "codec/cbor.h"
#include "cose/receipt.h"
#include "crypto/hash.h"
#include "ledger/audit.h"
#include "ledger/records.h"
#include "merkle/merkle.h"
#include "storage/store.h"
#include "unit/ledger/ledger_fixture.h"

namespace custos::ledger {
namespace {

using storage::Column;
using testutil::Fields;
using testutil::ledger_config;
using testutil::new_key;
using testutil::registration;
using testutil::revocation;
using testutil::sign;
using testutil::TempDir;
using testutil::test_keys;

constexpr uint64_t kT0 = 1767225600000;  // genesis created_ms in the fixture

// Issuer keys made once: key generation dominates otherwise.
const crypto::PrivateKey& issuer_key(int i) {
  static const std::vector<crypto::PrivateKey> kKeys = [] {
    std::vector<crypto::PrivateKey> keys;
    // Key 2 is ES256 so that both signature algorithms go through admission.
    for (int k = 0; k < 3; ++k) {
      keys.push_back(new_key(k == 2 ? crypto::Algorithm::kES256 : crypto::Algorithm::kEd25519));
    }
    return keys;
  }();
  return kKeys.at(i);
}

// Helpers throw instead of using ASSERT_* so they work inside RapidCheck
// properties and in functions returning values; gtest reports the exception.
template <typename T>
T must(Result<T> r, const std::string& what) {
  if (!r.ok()) throw std::runtime_error(what + ": " + r.status().to_string());
  return std::move(r).value();
}

Admitted must_admit(const Ledger& ledger, const Bytes& bytes) {
  return must(ledger.admit(bytes), "admit");
}

std::vector<Result<Registered>> append(Ledger& ledger, const std::vector<Bytes>& statements,
                                       uint64_t now_ms) {
  std::vector<Admitted> batch;
  for (const auto& s : statements) batch.push_back(must_admit(ledger, s));
  return must(ledger.append_block(std::move(batch), now_ms), "append_block");
}

Registered append_one(Ledger& ledger, const Bytes& statement, uint64_t now_ms) {
  auto results = append(ledger, {statement}, now_ms);
  return must(std::move(results.at(0)), "registration");
}

Bytes flip_last_byte(Bytes b) {
  b.back() ^= 0x01;
  return b;
}

ErrorCode admit_code(const Ledger& ledger, const Bytes& bytes) {
  auto a = ledger.admit(bytes);
  return a.ok() ? ErrorCode::kOk : a.status().code();
}

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  void reopen() {
    ledger_.reset();
    auto l = Ledger::open(ledger_config(dir_.path()));
    ASSERT_TRUE(l.ok()) << l.status().to_string();
    ledger_ = std::move(l).value();
  }
  void close() { ledger_.reset(); }

  uint64_t tick() { return now_ += 1000; }
  uint64_t next_admin_seq() { return ++admin_seq_; }

  // Registers issuer key i with `roles` in a block of its own.
  Registered register_key(int i, uint32_t roles = kRoleIssuer) {
    return append_one(*ledger_,
                      registration(test_keys().admin, next_admin_seq(), issuer_key(i).public_key(),
                                   roles, "issuer-" + std::to_string(i)),
                      tick());
  }
  Registered revoke_key(int i) {
    return append_one(
        *ledger_, revocation(test_keys().admin, next_admin_seq(), issuer_key(i).public_key().kid()),
        tick());
  }

  TempDir dir_;
  std::unique_ptr<Ledger> ledger_;
  uint64_t now_ = kT0;
  uint64_t admin_seq_ = 0;
};

// ---------------------------------------------------------------------------
// Opening

TEST_F(LedgerTest, OpenCreatesBlockZeroCommittingToTheGenesis) {
  const Head h = ledger_->head();
  EXPECT_EQ(h.height, 0u);
  EXPECT_EQ(h.log_size, 0u);
  EXPECT_EQ(h.root, merkle::empty_root());
  EXPECT_EQ(h.time_ms, kT0);
  auto b0 = ledger_->block(0);
  ASSERT_TRUE(b0.ok()) << b0.status().to_string();
  EXPECT_EQ(b0->header.height, 0u);
  EXPECT_EQ(b0->header.prev_hash, Hash256{});
  EXPECT_EQ(b0->header.entry_count, 0u);
  ASSERT_TRUE(b0->header.genesis_hash.has_value());
  EXPECT_EQ(*b0->header.genesis_hash, test_keys().genesis.hash);
  // Every node of a consortium writes the same block 0: no proposer in it,
  // while the record is signed by this node.
  EXPECT_EQ(b0->header.proposer, Hash256{});
  EXPECT_EQ(b0->signer, test_keys().node.public_key().kid());
  EXPECT_EQ(b0->header_hash(), h.header_hash);
  EXPECT_TRUE(verify_block_signatures(*b0, test_keys().node.public_key()).ok());
  EXPECT_EQ(ledger_->block(1).status().code(), ErrorCode::kNotFound);
  // The genesis admin is known, with admin and issuer roles.
  EXPECT_EQ(ledger_->key_count(), 1u);
  auto admin = ledger_->key(test_keys().admin.public_key().kid());
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->roles, kRoleAdmin | kRoleIssuer);
  EXPECT_EQ(admin->registered_index, kNoIndex);
  EXPECT_FALSE(admin->revoked());
  EXPECT_EQ(ledger_->node_name(), "node-1");
  EXPECT_EQ(ledger_->genesis().hash, test_keys().genesis.hash);
}

TEST_F(LedgerTest, ReopeningAnEmptyLedgerKeepsBlockZero) {
  const Head before = ledger_->head();
  reopen();
  const Head after = ledger_->head();
  EXPECT_EQ(after.height, 0u);
  EXPECT_EQ(after.header_hash, before.header_hash);
}

TEST_F(LedgerTest, OpeningWithAnotherGenesisIsAConflict) {
  close();
  // Same keys, another consortium: another genesis hash.
  auto config = ledger_config(dir_.path());
  config.genesis =
      testutil::make_genesis({{"admin-1", test_keys().admin.public_key()}},
                             {{"node-1", test_keys().node.public_key()}}, "another consortium");
  auto l = Ledger::open(config);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), ErrorCode::kConflict) << l.status().to_string();
}

TEST_F(LedgerTest, NodeKeyMustBeAGenesisNode) {
  TempDir other;
  auto config = ledger_config(other.path());
  config.node_key = new_key();
  auto l = Ledger::open(config);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), ErrorCode::kInvalidArgument) << l.status().to_string();
  // The admin key is in the genesis too, but not as a node.
  config.node_key = test_keys().admin;
  EXPECT_EQ(Ledger::open(config).status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(LedgerTest, SecondOpenOfALiveDataDirectoryFails) {
  auto l = Ledger::open(ledger_config(dir_.path()));
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), ErrorCode::kIo) << l.status().to_string();
}

// ---------------------------------------------------------------------------
// Admission (stateless policy)

TEST_F(LedgerTest, AdmitAcceptsAGoodStatement) {
  Bytes st = sign(test_keys().admin, 1);
  auto a = ledger_->admit(st);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->id, crypto::sha256(st));
  EXPECT_EQ(a->statement.bytes, st);
  EXPECT_EQ(a->statement.header.sequence, 1u);
}

TEST_F(LedgerTest, AdmitRefusesMalformedBytes) {
  EXPECT_EQ(admit_code(*ledger_, {}), ErrorCode::kMalformed);
  EXPECT_EQ(admit_code(*ledger_, to_bytes("not cbor at all")), ErrorCode::kMalformed);
  EXPECT_EQ(admit_code(*ledger_, cbor::encode(cbor::Value::array({}))), ErrorCode::kMalformed);
  Bytes st = sign(test_keys().admin, 1);
  Bytes truncated(st.begin(), st.end() - 10);
  EXPECT_EQ(admit_code(*ledger_, truncated), ErrorCode::kMalformed);
  Bytes trailing = st;
  trailing.push_back(0x00);
  EXPECT_EQ(admit_code(*ledger_, trailing), ErrorCode::kMalformed);
  // application/cbor payloads must be CBOR.
  Fields f;
  f.payload = to_bytes("\xff\xfe not cbor");
  EXPECT_EQ(admit_code(*ledger_, sign(test_keys().admin, 1, f)), ErrorCode::kMalformed);
}

TEST_F(LedgerTest, AdmitRefusesUnknownKey) {
  auto a = ledger_->admit(sign(issuer_key(0), 1));
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), ErrorCode::kUnknownKey);
  EXPECT_NE(a.status().message().find(to_hex(issuer_key(0).public_key().kid())), std::string::npos);
}

TEST_F(LedgerTest, AdmitRefusesRevokedKey) {
  register_key(0);
  EXPECT_EQ(admit_code(*ledger_, sign(issuer_key(0), 1)), ErrorCode::kOk);
  revoke_key(0);
  EXPECT_EQ(admit_code(*ledger_, sign(issuer_key(0), 1)), ErrorCode::kRevokedKey);
}

TEST_F(LedgerTest, AdmitRefusesBadSignature) {
  Bytes st = sign(test_keys().admin, 1);
  // The signature is the last bstr: flipping its last byte keeps the structure.
  EXPECT_EQ(admit_code(*ledger_, flip_last_byte(st)), ErrorCode::kBadSignature);
  // A registered key's statement carrying another key's valid signature.
  register_key(0);
  Bytes mine = sign(issuer_key(0), 1);
  Bytes theirs = sign(test_keys().admin, 1);
  std::copy(theirs.end() - 64, theirs.end(), mine.end() - 64);
  EXPECT_EQ(admit_code(*ledger_, mine), ErrorCode::kBadSignature);
}

TEST_F(LedgerTest, AdmitRefusesOversizedStatements) {
  Bytes huge(limits::kStatementBytesMax + 1, 0xa0);
  EXPECT_EQ(admit_code(*ledger_, huge), ErrorCode::kTooLarge);
  // A real, correctly signed statement over the limit as well.
  Fields f;
  f.payload = cbor::encode(cbor::Value::bytes(Bytes(limits::kStatementBytesMax, 0x42)));
  Bytes big = sign(test_keys().admin, 1, f);
  ASSERT_GT(big.size(), limits::kStatementBytesMax);
  auto a = ledger_->admit(big);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), ErrorCode::kTooLarge);
  // Just under the limit is fine.
  f.payload = cbor::encode(cbor::Value::bytes(Bytes(limits::kStatementBytesMax - 400, 0x42)));
  Bytes fits = sign(test_keys().admin, 1, f);
  ASSERT_LE(fits.size(), limits::kStatementBytesMax);
  EXPECT_EQ(admit_code(*ledger_, fits), ErrorCode::kOk);
}

TEST_F(LedgerTest, AdmitRefusesContentTypeNotAllowedForRole) {
  register_key(0, kRoleIssuer);
  register_key(1, kRoleIssuer | kRoleOpaque);
  register_key(2, kRoleAdmin);
  Fields text;
  text.content_type = "text/plain";
  text.payload = to_bytes("free text");
  // Unknown content types need the opaque role.
  EXPECT_EQ(admit_code(*ledger_, sign(issuer_key(0), 1, text)), ErrorCode::kPolicy);
  EXPECT_EQ(admit_code(*ledger_, sign(test_keys().admin, 1, text)), ErrorCode::kPolicy);
  EXPECT_EQ(admit_code(*ledger_, sign(issuer_key(1), 1, text)), ErrorCode::kOk);
  // An admin-only key may not post ordinary statements.
  EXPECT_EQ(admit_code(*ledger_, sign(issuer_key(2), 1)), ErrorCode::kPolicy);
  EXPECT_EQ(admit_code(*ledger_, sign(issuer_key(0), 1)), ErrorCode::kOk);
}

TEST_F(LedgerTest, AdmitRefusesKeyManagementByNonAdmin) {
  register_key(0, kRoleIssuer | kRoleOpaque);
  auto reg =
      ledger_->admit(registration(issuer_key(0), 1, issuer_key(1).public_key(), kRoleIssuer, "x"));
  ASSERT_FALSE(reg.ok());
  EXPECT_EQ(reg.status().code(), ErrorCode::kPolicy);
  EXPECT_EQ(
      admit_code(*ledger_, revocation(issuer_key(0), 1, test_keys().admin.public_key().kid())),
      ErrorCode::kPolicy);
  // The same statements from an admin are fine.
  register_key(2, kRoleAdmin);
  EXPECT_EQ(admit_code(*ledger_, registration(issuer_key(2), 1, issuer_key(1).public_key(),
                                              kRoleIssuer, "x")),
            ErrorCode::kOk);
}

TEST_F(LedgerTest, AdmitRefusesMalformedKeyManagementPayloads) {
  const auto& admin = test_keys().admin;
  auto with_payload = [&](std::string_view type, cbor::Value payload) {
    Fields f;
    f.content_type = std::string(type);
    f.payload = cbor::encode(payload);
    return admit_code(*ledger_, sign(admin, 1, f));
  };
  auto reg_map = [&](std::vector<std::pair<std::string, cbor::Value>> fields) {
    cbor::Map m;
    for (auto& [k, v] : fields) m.emplace_back(cbor::text(k), std::move(v));
    return cbor::Value::map(std::move(m));
  };
  const Bytes spki = issuer_key(0).public_key().spki_der();
  auto roles = [](std::vector<std::string> names) {
    cbor::Array a;
    for (auto& n : names) a.push_back(cbor::text(n));
    return cbor::Value::array(std::move(a));
  };
  // Well-formed, for contrast.
  EXPECT_EQ(with_payload(kTypeKeyRegister, reg_map({{"key", cbor::Value::bytes(spki)},
                                                    {"name", cbor::text("k")},
                                                    {"roles", roles({"issuer"})}})),
            ErrorCode::kOk);
  // Not a map.
  EXPECT_EQ(with_payload(kTypeKeyRegister, cbor::text("key")), ErrorCode::kMalformed);
  // The key is not SPKI DER.
  EXPECT_EQ(with_payload(kTypeKeyRegister, reg_map({{"key", cbor::Value::bytes(Bytes{1, 2, 3})},
                                                    {"name", cbor::text("k")},
                                                    {"roles", roles({"issuer"})}})),
            ErrorCode::kMalformed);
  // Missing roles, empty roles, unknown role.
  EXPECT_EQ(with_payload(kTypeKeyRegister,
                         reg_map({{"key", cbor::Value::bytes(spki)}, {"name", cbor::text("k")}})),
            ErrorCode::kMalformed);
  EXPECT_EQ(with_payload(kTypeKeyRegister, reg_map({{"key", cbor::Value::bytes(spki)},
                                                    {"name", cbor::text("k")},
                                                    {"roles", roles({})}})),
            ErrorCode::kMalformed);
  EXPECT_EQ(with_payload(kTypeKeyRegister, reg_map({{"key", cbor::Value::bytes(spki)},
                                                    {"name", cbor::text("k")},
                                                    {"roles", roles({"superuser"})}})),
            ErrorCode::kMalformed);
  // An unexpected field.
  EXPECT_EQ(with_payload(kTypeKeyRegister, reg_map({{"key", cbor::Value::bytes(spki)},
                                                    {"name", cbor::text("k")},
                                                    {"roles", roles({"issuer"})},
                                                    {"extra", cbor::integer(1)}})),
            ErrorCode::kMalformed);
  // A name over the limit.
  EXPECT_EQ(with_payload(kTypeKeyRegister,
                         reg_map({{"key", cbor::Value::bytes(spki)},
                                  {"name", cbor::text(std::string(kKeyNameBytesMax + 1, 'n'))},
                                  {"roles", roles({"issuer"})}})),
            ErrorCode::kTooLarge);
  // Revocations: the kid must be 32 bytes.
  EXPECT_EQ(with_payload(kTypeKeyRevoke, reg_map({{"kid", cbor::Value::bytes(Bytes(16, 1))},
                                                  {"reason", cbor::text("r")}})),
            ErrorCode::kMalformed);
  EXPECT_EQ(with_payload(kTypeKeyRevoke, reg_map({{"kid", cbor::Value::bytes(Bytes(32, 1))}})),
            ErrorCode::kMalformed);
}

// ---------------------------------------------------------------------------
// Appending blocks (stateful policy)

TEST_F(LedgerTest, IndexesAreAssignedInOrderAcrossBlocks) {
  const auto& admin = test_keys().admin;
  auto r1 = append(*ledger_, {sign(admin, 1), sign(admin, 2), sign(admin, 3)}, tick());
  ASSERT_EQ(r1.size(), 3u);
  for (uint64_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(r1[i].ok()) << r1[i].status().to_string();
    EXPECT_EQ(r1[i]->index, i);
    EXPECT_EQ(r1[i]->height, 1u);
    EXPECT_FALSE(r1[i]->gap.has_value());
  }
  auto r2 = append(*ledger_, {sign(admin, 4), sign(admin, 5)}, tick());
  ASSERT_TRUE(r2[0].ok() && r2[1].ok());
  EXPECT_EQ(r2[0]->index, 3u);
  EXPECT_EQ(r2[1]->index, 4u);
  EXPECT_EQ(r2[1]->height, 2u);

  const Head h = ledger_->head();
  EXPECT_EQ(h.height, 2u);
  EXPECT_EQ(h.log_size, 5u);
  auto b2 = ledger_->block(2);
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ(b2->header.entry_count, 2u);
  EXPECT_EQ(b2->header.log_size, 5u);
  EXPECT_EQ(b2->header.prev_hash, ledger_->block(1)->header_hash());
  EXPECT_EQ(b2->header.time_ms, now_);
  EXPECT_FALSE(b2->header.genesis_hash.has_value());

  for (uint64_t i = 0; i < 5; ++i) {
    auto e = ledger_->entry_at(i);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    EXPECT_EQ(e->index, i);
    EXPECT_EQ(e->header.sequence, i + 1);
    EXPECT_EQ(e->height, i < 3 ? 1u : 2u);
    EXPECT_EQ(e->registered_ms, i < 3 ? kT0 + 1000 : kT0 + 2000);
    EXPECT_EQ(e->id, crypto::sha256(e->statement));
    auto by_id = ledger_->entry(e->id);
    ASSERT_TRUE(by_id.ok());
    EXPECT_EQ(by_id->index, i);
  }
  EXPECT_EQ(ledger_->entry_at(5).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(ledger_->entry(Hash256{}).status().code(), ErrorCode::kNotFound);
}

TEST_F(LedgerTest, ReplayIsRefusedAcrossBlocksAndWithinOneBatch) {
  const auto& admin = test_keys().admin;
  Bytes s1 = sign(admin, 1);
  append_one(*ledger_, s1, tick());
  // The identical statement again, and a different statement reusing seq 1.
  Fields other;
  other.subject = "other";
  auto r = append(*ledger_, {s1, sign(admin, 1, other), sign(admin, 2)}, tick());
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].status().code(), ErrorCode::kReplay);
  EXPECT_EQ(r[1].status().code(), ErrorCode::kReplay);
  ASSERT_TRUE(r[2].ok());
  EXPECT_EQ(r[2]->index, 1u);

  // Within one batch: a duplicate, and a lower number after a higher one.
  Bytes s3 = sign(admin, 3);
  auto w = append(*ledger_,
                  {s3, s3, sign(admin, 5), sign(admin, 4), sign(admin, 5, other), sign(admin, 6)},
                  tick());
  ASSERT_EQ(w.size(), 6u);
  EXPECT_TRUE(w[0].ok());
  EXPECT_EQ(w[1].status().code(), ErrorCode::kReplay);
  EXPECT_TRUE(w[2].ok());  // a gap of one (4 skipped)
  EXPECT_EQ(w[3].status().code(), ErrorCode::kReplay);
  EXPECT_EQ(w[4].status().code(), ErrorCode::kReplay);
  ASSERT_TRUE(w[5].ok());
  EXPECT_EQ(w[5]->index, 4u);  // refusals take no index
  EXPECT_EQ(ledger_->head().log_size, 5u);
  EXPECT_EQ(ledger_->key(admin.public_key().kid())->last_sequence, 6u);
}

TEST_F(LedgerTest, GapIsAcceptedReportedAndPersisted) {
  const auto& admin = test_keys().admin;
  append_one(*ledger_, sign(admin, 1), tick());
  Registered g = append_one(*ledger_, sign(admin, 5), tick());
  ASSERT_TRUE(g.gap.has_value());
  EXPECT_EQ(g.gap->expected, 2u);
  EXPECT_EQ(g.gap->got, 5u);
  EXPECT_TRUE(g.gap->gap());
  Registered next = append_one(*ledger_, sign(admin, 6), tick());
  EXPECT_FALSE(next.gap.has_value());

  auto check = [&] {
    auto e = ledger_->entry(g.id);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    ASSERT_TRUE(e->gap.has_value());
    EXPECT_EQ(e->gap->expected, 2u);
    EXPECT_EQ(e->gap->got, 5u);
    EXPECT_FALSE(ledger_->entry(next.id)->gap.has_value());
    EXPECT_TRUE(ledger_->entry_at(g.index)->gap.has_value());
  };
  check();
  reopen();
  check();
  // The skipped numbers stay refused: they are below the last accepted one.
  auto r = append(*ledger_, {sign(admin, 3)}, tick());
  EXPECT_EQ(r[0].status().code(), ErrorCode::kReplay);
}

TEST_F(LedgerTest, FirstStatementOfAKeyMayStartAboveOne) {
  Registered r = append_one(*ledger_, sign(test_keys().admin, 10), tick());
  ASSERT_TRUE(r.gap.has_value());
  EXPECT_EQ(r.gap->expected, 1u);
  EXPECT_EQ(r.gap->got, 10u);
}

TEST_F(LedgerTest, RegisteredKeyIsUsableFromTheNextBlock) {
  // Before registration the key is unknown.
  EXPECT_EQ(admit_code(*ledger_, sign(issuer_key(0), 1)), ErrorCode::kUnknownKey);
  Registered reg = register_key(0, kRoleIssuer);
  EXPECT_EQ(reg.index, 0u);
  auto k = ledger_->key(issuer_key(0).public_key().kid());
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->name, "issuer-0");
  EXPECT_EQ(k->roles, static_cast<uint32_t>(kRoleIssuer));
  EXPECT_EQ(k->registered_index, 0u);
  EXPECT_EQ(k->last_sequence, 0u);
  EXPECT_EQ(ledger_->key_count(), 2u);

  Registered used = append_one(*ledger_, sign(issuer_key(0), 1), tick());
  EXPECT_EQ(used.index, 1u);
  EXPECT_EQ(used.height, 2u);
  EXPECT_EQ(ledger_->key(issuer_key(0).public_key().kid())->last_sequence, 1u);

  // Registering it again is a conflict (stateful), and takes no index.
  auto again = append(*ledger_,
                      {registration(test_keys().admin, next_admin_seq(), issuer_key(0).public_key(),
                                    kRoleIssuer, "dup")},
                      tick());
  EXPECT_EQ(again[0].status().code(), ErrorCode::kConflict);
  EXPECT_EQ(ledger_->head().height, 2u);
}

TEST_F(LedgerTest, RevocationInTheSameBatchRefusesLaterStatementsButKeepsEarlierOnes) {
  register_key(0);
  const auto& admin = test_keys().admin;
  const Hash256 kid = issuer_key(0).public_key().kid();
  Bytes before = sign(issuer_key(0), 1);
  Bytes after = sign(issuer_key(0), 2);
  const uint64_t revoke_seq = next_admin_seq();
  auto r = append(
      *ledger_, {before, revocation(admin, revoke_seq, kid), after, sign(admin, next_admin_seq())},
      tick());
  ASSERT_EQ(r.size(), 4u);
  ASSERT_TRUE(r[0].ok()) << r[0].status().to_string();
  ASSERT_TRUE(r[1].ok()) << r[1].status().to_string();
  EXPECT_EQ(r[2].status().code(), ErrorCode::kRevokedKey);
  ASSERT_TRUE(r[3].ok());
  EXPECT_EQ(r[3]->index, r[1]->index + 1);

  auto k = ledger_->key(kid);
  ASSERT_TRUE(k.ok());
  EXPECT_TRUE(k->revoked());
  EXPECT_EQ(k->revoked_index, r[1]->index);
  EXPECT_EQ(k->last_sequence, 1u);
  // The earlier statement stays registered and provable.
  auto e = ledger_->entry(r[0]->id);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(ledger_->receipt(r[0]->id).ok());
  EXPECT_EQ(ledger_->entry(crypto::sha256(after)).status().code(), ErrorCode::kNotFound);
  // From now on admission refuses the key outright.
  EXPECT_EQ(admit_code(*ledger_, sign(issuer_key(0), 3)), ErrorCode::kRevokedKey);

  // Revoking again is a conflict; revoking an unknown key is not found.
  auto r2 = append(
      *ledger_,
      {revocation(admin, next_admin_seq(), kid), revocation(admin, next_admin_seq(), Hash256{})},
      tick());
  EXPECT_EQ(r2[0].status().code(), ErrorCode::kConflict);
  EXPECT_EQ(r2[1].status().code(), ErrorCode::kNotFound);

  close();
  AuditReport report;
  Status s = audit(dir_.path(), &report);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST_F(LedgerTest, StatementsAdmittedBeforeARevocationBlockAreRefusedAtAppend) {
  // Admission saw the key valid; the revocation landed before the append.
  register_key(0);
  Admitted pending = must_admit(*ledger_, sign(issuer_key(0), 1));
  revoke_key(0);
  std::vector<Admitted> batch;
  batch.push_back(std::move(pending));
  auto r = ledger_->append_block(std::move(batch), tick());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].status().code(), ErrorCode::kRevokedKey);
}

TEST_F(LedgerTest, BatchWithEverythingRefusedWritesNoBlock) {
  const auto& admin = test_keys().admin;
  append_one(*ledger_, sign(admin, 2), tick());
  const Head before = ledger_->head();
  auto r = append(*ledger_, {sign(admin, 1), sign(admin, 2)}, tick());
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status().code(), ErrorCode::kReplay);
  EXPECT_EQ(r[1].status().code(), ErrorCode::kReplay);
  const Head after = ledger_->head();
  EXPECT_EQ(after.height, before.height);
  EXPECT_EQ(after.header_hash, before.header_hash);
  EXPECT_EQ(ledger_->block(before.height + 1).status().code(), ErrorCode::kNotFound);
  // An empty batch writes nothing either.
  auto empty = ledger_->append_block({}, tick());
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(ledger_->head().height, before.height);
  // The next accepted statement goes into the very next height.
  Registered next = append_one(*ledger_, sign(admin, 3), tick());
  EXPECT_EQ(next.height, before.height + 1);
  EXPECT_EQ(next.index, before.log_size);
}

// The node writes every block one consensus step commits with one
// append_blocks call: it must leave exactly what one append_block per block
// leaves (heights, records, refusals, key states), in one synced write.
TEST_F(LedgerTest, AppendBlocksWritesWhatOneAppendPerBlockWrites) {
  const auto& admin = test_keys().admin;
  const Hash256 kid0 = issuer_key(0).public_key().kid();
  const Hash256 kid1 = issuer_key(1).public_key().kid();
  TempDir other_dir;
  auto opened = Ledger::open(ledger_config(other_dir.path()));
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  std::unique_ptr<Ledger> one_by_one = std::move(opened).value();
  // The same history on both: keys 0 and 1 registered, one block each.
  for (Ledger* l : {ledger_.get(), one_by_one.get()}) {
    append_one(*l, registration(admin, 1, issuer_key(0).public_key(), kRoleIssuer, "issuer-0"),
               kT0 + 1000);
    append_one(*l, registration(admin, 2, issuer_key(1).public_key(), kRoleIssuer, "issuer-1"),
               kT0 + 2000);
  }
  // Four blocks: statements; a block whose statements are all refused (no
  // height); one that revokes key 1 after using it; one using key 0 again
  // at an earlier time than the blocks before (block times never go back).
  const std::vector<std::pair<std::vector<Bytes>, uint64_t>> blocks = {
      {{sign(issuer_key(0), 1), sign(issuer_key(0), 2), sign(issuer_key(1), 5)}, kT0 + 5000},
      {{sign(issuer_key(0), 2), sign(issuer_key(0), 1)}, kT0 + 6000},
      {{sign(issuer_key(1), 6), revocation(admin, 3, kid1), sign(issuer_key(1), 7)}, kT0 + 7000},
      {{sign(issuer_key(0), 4)}, kT0 + 4000},
  };
  std::vector<BlockInput> inputs;
  std::vector<std::vector<Result<Registered>>> expected;
  for (const auto& [statements, time_ms] : blocks) {
    BlockInput in;
    for (const Bytes& st : statements) in.batch.push_back(must_admit(*ledger_, st));
    in.context.time_ms = time_ms;
    in.context.proposer = test_keys().node.public_key().kid();
    in.context.meta.emplace_back("marker", Bytes{static_cast<uint8_t>(inputs.size())});
    std::vector<Admitted> copy;
    for (const Bytes& st : statements) copy.push_back(must_admit(*one_by_one, st));
    expected.push_back(must(one_by_one->append_block(std::move(copy), in.context), "append"));
    inputs.push_back(std::move(in));
  }
  auto grouped = ledger_->append_blocks(std::move(inputs));
  ASSERT_TRUE(grouped.ok()) << grouped.status().to_string();
  ASSERT_EQ(grouped->size(), expected.size());
  for (size_t b = 0; b < expected.size(); ++b) {
    ASSERT_EQ((*grouped)[b].size(), expected[b].size());
    for (size_t i = 0; i < expected[b].size(); ++i) {
      const auto& got = (*grouped)[b][i];
      const auto& want = expected[b][i];
      ASSERT_EQ(got.ok(), want.ok()) << "block " << b << " item " << i;
      if (!got.ok()) {
        EXPECT_EQ(got.status().code(), want.status().code());
        continue;
      }
      EXPECT_EQ(got->id, want->id);
      EXPECT_EQ(got->index, want->index);
      EXPECT_EQ(got->height, want->height);
    }
  }
  // The refused block took no height: 2 + 3 blocks written.
  const Head head = ledger_->head();
  EXPECT_EQ(head.height, 5u);
  EXPECT_EQ(head.root, one_by_one->head().root);
  EXPECT_EQ(head.header_hash, one_by_one->head().header_hash);
  EXPECT_EQ(head.time_ms, kT0 + 7000);
  for (uint64_t h = 1; h <= head.height; ++h) {
    EXPECT_EQ(ledger_->block(h)->encode(), one_by_one->block(h)->encode()) << "height " << h;
  }
  EXPECT_EQ(must(ledger_->meta("marker"), "meta"), Bytes{3});
  EXPECT_TRUE(ledger_->key(kid1)->revoked());

  // What was written survives a restart: head, keys, sequence numbers.
  reopen();
  EXPECT_EQ(ledger_->head().header_hash, head.header_hash);
  EXPECT_EQ(ledger_->key(kid0)->last_sequence, 4u);
  EXPECT_EQ(ledger_->key(kid1)->last_sequence, 6u);
  EXPECT_TRUE(ledger_->key(kid1)->revoked());
  EXPECT_TRUE(ledger_->receipt((*grouped)[0][2]->id).ok());
  close();
  AuditReport report;
  Status s = audit(dir_.path(), &report);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST_F(LedgerTest, BlockTimesNeverGoBack) {
  const auto& admin = test_keys().admin;
  append_one(*ledger_, sign(admin, 1), kT0 + 50000);
  append_one(*ledger_, sign(admin, 2), kT0 + 10);  // the clock stepped back
  auto b = ledger_->block(2);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->header.time_ms, kT0 + 50000);
}

// Many blocks of varying sizes from several keys, shared by the proof tests.
class LedgerProofTest : public LedgerTest {
 protected:
  void SetUp() override {
    LedgerTest::SetUp();
    register_key(0);
    register_key(1);
    std::vector<uint64_t> seq(2, 0);
    for (int block = 0; block < 24; ++block) {
      std::vector<Bytes> batch;
      const int n = 1 + (block * 5) % 7;
      for (int j = 0; j < n; ++j) batch.push_back(sign(issuer_key(j % 2), ++seq[j % 2]));
      auto r = append(*ledger_, batch, tick());
      for (auto& x : r) ASSERT_TRUE(x.ok()) << x.status().to_string();
    }
  }
};

TEST_F(LedgerProofTest, EveryReceiptVerifies) {
  const Head h = ledger_->head();
  ASSERT_GT(h.log_size, 60u);
  const crypto::PublicKey& node = test_keys().node.public_key();
  for (uint64_t i = 0; i < h.log_size; ++i) {
    auto e = ledger_->entry_at(i);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    auto bytes = ledger_->receipt(e->id);
    ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
    auto bundle = cose::parse_receipt_bundle(*bytes);
    ASSERT_TRUE(bundle.ok()) << bundle.status().to_string();
    ASSERT_EQ(bundle->size(), 1u);  // one node: its own signature is the quorum
    auto receipt = std::optional<cose::Receipt>((*bundle)[0]);
    // The proof is to the root of the entry's own block, except for the lone
    // entry of a 1-entry tree, proven against the newest block instead
    // (docs/formats.md: RFC 9942 wants at least one hash in the path).
    auto b = ledger_->block(e->height);
    ASSERT_TRUE(b.ok());
    if (b->header.log_size == 1) b = ledger_->block(h.height);
    EXPECT_EQ(receipt->proof.leaf_index, i);
    EXPECT_EQ(receipt->proof.tree_size, b->header.log_size)
        << "entry " << i << " in block " << e->height;
    EXPECT_EQ(receipt->header.kid, node.kid());
    EXPECT_EQ(receipt->header.issued_at_s, b->header.time_ms / 1000) << "entry " << i;
    Status v = cose::verify_receipt(*receipt, e->statement, node);
    EXPECT_TRUE(v.ok()) << "entry " << i << ": " << v.to_string();
    // Not for other bytes, nor under another key.
    EXPECT_FALSE(cose::verify_receipt(*receipt, flip_last_byte(e->statement), node).ok());
    EXPECT_FALSE(cose::verify_receipt(*receipt, e->statement, test_keys().admin.public_key()).ok());
  }
  EXPECT_EQ(ledger_->receipt(Hash256{}).status().code(), ErrorCode::kNotFound);
}

TEST_F(LedgerProofTest, CheckpointVerifiesAndNamesTheHead) {
  const Head h = ledger_->head();
  auto cp = ledger_->checkpoint();
  ASSERT_TRUE(cp.ok());
  auto header = verify_checkpoint(*cp, test_keys().node.public_key());
  ASSERT_TRUE(header.ok()) << header.status().to_string();
  EXPECT_EQ(header->height, h.height);
  EXPECT_EQ(header->log_size, h.log_size);
  EXPECT_EQ(header->root, h.root);
  EXPECT_EQ(header->time_ms, h.time_ms);
  EXPECT_EQ(crypto::sha256(header->encode()), h.header_hash);
  // Another key, or a flipped signature bit, does not verify.
  EXPECT_EQ(verify_checkpoint(*cp, test_keys().admin.public_key()).status().code(),
            ErrorCode::kBadSignature);
  EXPECT_EQ(verify_checkpoint(flip_last_byte(*cp), test_keys().node.public_key()).status().code(),
            ErrorCode::kBadSignature);
}

TEST_F(LedgerProofTest, ConsistencyProofsVerifyBetweenAnyTwoSizes) {
  const Head h = ledger_->head();
  // Roots at every size, recomputed from the entries themselves.
  merkle::MemoryTree tree;
  std::vector<merkle::Hash> roots{merkle::empty_root()};
  for (uint64_t i = 0; i < h.log_size; ++i) {
    tree.append(ledger_->entry_at(i)->statement);
    roots.push_back(tree.root());
  }
  // The blocks committed to those roots.
  for (uint64_t height = 0; height <= h.height; ++height) {
    auto b = ledger_->block(height);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->header.root, roots[b->header.log_size]) << "block " << height;
  }
  for (uint64_t a = 1; a <= h.log_size; ++a) {
    for (uint64_t b = a; b <= h.log_size; ++b) {
      auto proof = ledger_->consistency(a, b);
      ASSERT_TRUE(proof.ok()) << a << ".." << b << ": " << proof.status().to_string();
      EXPECT_EQ(proof->size1, a);
      EXPECT_EQ(proof->size2, b);
      Status v = merkle::verify_consistency(a, b, roots[a], roots[b], proof->path);
      ASSERT_TRUE(v.ok()) << a << ".." << b << ": " << v.to_string();
      if (a < b && a > 1) {
        // Bound to the sizes: the same proof does not show a wrong old root.
        EXPECT_FALSE(merkle::verify_consistency(a, b, roots[a - 1], roots[b], proof->path).ok());
      }
    }
  }
  // Between block roots, the way a client holding two checkpoints checks.
  for (uint64_t h1 = 1; h1 <= h.height; ++h1) {
    for (uint64_t h2 = h1; h2 <= h.height; ++h2) {
      auto b1 = ledger_->block(h1);
      auto b2 = ledger_->block(h2);
      auto proof = ledger_->consistency(b1->header.log_size, b2->header.log_size);
      ASSERT_TRUE(proof.ok());
      EXPECT_TRUE(merkle::verify_consistency(b1->header.log_size, b2->header.log_size,
                                             b1->header.root, b2->header.root, proof->path)
                      .ok());
    }
  }
  EXPECT_EQ(ledger_->consistency(0, 1).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ledger_->consistency(3, 2).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ledger_->consistency(1, h.log_size + 1).status().code(), ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Queries

struct RefEntry {
  uint64_t index;
  std::string issuer, subject, type;
  uint64_t time_ms;
};

class LedgerQueryTest : public LedgerTest {
 protected:
  void SetUp() override {
    LedgerTest::SetUp();
    const Registered reg = register_key(0, kRoleIssuer | kRoleOpaque);
    ref_.push_back({reg.index, "admin-1", "keys/issuer-0", std::string(kTypeKeyRegister), now_});
    const std::vector<std::string> issuers{"urn:dev:pump", "urn:dev:monitor", "urn:dev:scale"};
    const std::vector<std::string> subjects{"rate", "alarm", "weight", "battery"};
    const std::vector<std::string> types{std::string(kTypeCbor), "text/plain"};
    uint64_t seq = 0;
    uint64_t k = 0;
    for (int block = 0; block < 12; ++block) {
      const uint64_t t = tick();
      block_times_.push_back(t);
      std::vector<Bytes> batch;
      std::vector<RefEntry> pending;
      const int n = 1 + (block * 3) % 5;
      for (int j = 0; j < n; ++j, ++k) {
        Fields f;
        f.issuer = issuers[k % issuers.size()];
        f.subject = subjects[(k / 2) % subjects.size()];
        f.content_type = types[(k / 3) % types.size()];
        if (f.content_type == "text/plain") f.payload = to_bytes("entry " + std::to_string(k));
        batch.push_back(sign(issuer_key(0), ++seq, f));
        pending.push_back({0, f.issuer, f.subject, f.content_type, t});
      }
      auto r = append(*ledger_, batch, t);
      for (size_t j = 0; j < r.size(); ++j) {
        ASSERT_TRUE(r[j].ok()) << r[j].status().to_string();
        pending[j].index = r[j]->index;
        ref_.push_back(pending[j]);
      }
    }
  }

  std::vector<uint64_t> expected(const Query& q) const {
    std::vector<uint64_t> out;
    for (const auto& e : ref_) {
      if (q.issuer && e.issuer != *q.issuer) continue;
      if (q.subject && e.subject != *q.subject) continue;
      if (q.content_type && e.type != *q.content_type) continue;
      if (q.from_ms && e.time_ms < *q.from_ms) continue;
      if (q.to_ms && e.time_ms >= *q.to_ms) continue;
      if (e.index < q.cursor) continue;
      out.push_back(e.index);
    }
    return out;
  }

  // Follows next_cursor to the end; checks each page on the way.
  std::vector<uint64_t> all_pages(Query q) const {
    std::vector<uint64_t> out;
    for (int pages = 0; pages < 1000; ++pages) {
      auto page = ledger_->query(q);
      if (!page.ok()) throw std::runtime_error(page.status().to_string());
      if (page->entries.size() > std::max<size_t>(q.limit, 1))
        throw std::runtime_error("page over its limit");
      for (const auto& e : page->entries) {
        const RefEntry& r = ref_.at(e.index);
        if (r.index != e.index || e.header.issuer != r.issuer || e.header.subject != r.subject ||
            e.header.content_type != r.type || e.registered_ms != r.time_ms) {
          throw std::runtime_error("entry " + std::to_string(e.index) +
                                   " does not match what was registered");
        }
        out.push_back(e.index);
      }
      if (!page->next_cursor) return out;
      if (*page->next_cursor <= q.cursor) throw std::runtime_error("cursor did not advance");
      q.cursor = *page->next_cursor;
    }
    throw std::runtime_error("paging did not end");
  }

  // Newest first: follows next_cursor (an exclusive upper bound) to the end.
  std::vector<uint64_t> all_pages_descending(Query q) const {
    q.descending = true;
    std::vector<uint64_t> out;
    for (int pages = 0; pages < 1000; ++pages) {
      auto page = ledger_->query(q);
      if (!page.ok()) throw std::runtime_error(page.status().to_string());
      if (page->entries.size() > std::max<size_t>(q.limit, 1))
        throw std::runtime_error("page over its limit");
      for (const auto& e : page->entries) {
        if (!out.empty() && e.index >= out.back())
          throw std::runtime_error("entries not newest first");
        out.push_back(e.index);
      }
      if (!page->next_cursor) return out;
      if (q.cursor != 0 && *page->next_cursor >= q.cursor)
        throw std::runtime_error("cursor did not go down");
      q.cursor = *page->next_cursor;
    }
    throw std::runtime_error("paging did not end");
  }

  std::vector<RefEntry> ref_;
  std::vector<uint64_t> block_times_;
};

TEST_F(LedgerQueryTest, EveryFilterCombinationWithPagingReturnsExactlyTheMatches) {
  const std::vector<std::optional<std::string>> issuers{
      std::nullopt, "urn:dev:pump", "urn:dev:scale", "admin-1", "urn:dev:nobody"};
  const std::vector<std::optional<std::string>> subjects{std::nullopt, "rate", "battery",
                                                         "keys/issuer-0"};
  const std::vector<std::optional<std::string>> types{std::nullopt, std::string(kTypeCbor),
                                                      "text/plain", std::string(kTypeKeyRegister)};
  const uint64_t t3 = block_times_[3], t8 = block_times_[8];
  const std::vector<std::pair<std::optional<uint64_t>, std::optional<uint64_t>>> ranges{
      {std::nullopt, std::nullopt},
      {t3, t8},
      {t3, std::nullopt},
      {std::nullopt, t8},
      {t3 + 1, t8 + 1},
      {t8, t3},
      {0, kT0 + 1},
      {block_times_.back() + 1, std::nullopt}};
  size_t checked = 0, nonempty = 0;
  for (const auto& issuer : issuers) {
    for (const auto& subject : subjects) {
      for (const auto& type : types) {
        for (const auto& [from, to] : ranges) {
          for (size_t limit : {1, 4, 1000}) {
            Query q;
            q.issuer = issuer;
            q.subject = subject;
            q.content_type = type;
            q.from_ms = from;
            q.to_ms = to;
            q.limit = limit;
            const auto want = expected(q);
            ASSERT_EQ(all_pages(q), want)
                << "issuer=" << issuer.value_or("*") << " subject=" << subject.value_or("*")
                << " type=" << type.value_or("*") << " from=" << from.value_or(0)
                << " to=" << to.value_or(0) << " limit=" << limit;
            ++checked;
            nonempty += !want.empty();
          }
        }
      }
    }
  }
  // The data set is rich enough that most combinations are not trivially empty.
  EXPECT_GT(nonempty, checked / 8);
}

TEST_F(LedgerQueryTest, DescendingReturnsTheSameMatchesNewestFirst) {
  const std::vector<std::optional<std::string>> issuers{std::nullopt, "urn:dev:pump", "admin-1",
                                                        "urn:dev:nobody"};
  const std::vector<std::optional<std::string>> types{std::nullopt, "text/plain"};
  const uint64_t t3 = block_times_[3], t8 = block_times_[8];
  const std::vector<std::pair<std::optional<uint64_t>, std::optional<uint64_t>>> ranges{
      {std::nullopt, std::nullopt}, {t3, t8}, {std::nullopt, t8}, {t3 + 1, std::nullopt}, {t8, t3}};
  size_t nonempty = 0;
  for (const auto& issuer : issuers) {
    for (const auto& type : types) {
      for (const auto& [from, to] : ranges) {
        for (size_t limit : {1, 3, 1000}) {
          Query q;
          q.issuer = issuer;
          q.content_type = type;
          q.from_ms = from;
          q.to_ms = to;
          q.limit = limit;
          auto want = expected(q);
          std::reverse(want.begin(), want.end());
          ASSERT_EQ(all_pages_descending(q), want)
              << "issuer=" << issuer.value_or("*") << " type=" << type.value_or("*")
              << " from=" << from.value_or(0) << " to=" << to.value_or(0) << " limit=" << limit;
          nonempty += !want.empty();
        }
      }
    }
  }
  EXPECT_GT(nonempty, 10u);
}

TEST_F(LedgerQueryTest, DescendingFindsTheNewestMatchAtOrBeforeATime) {
  // The question "what was the newest entry of this issuer at time T?"
  const uint64_t t = block_times_[6];
  Query q;
  q.issuer = "urn:dev:pump";
  q.to_ms = t + 1;
  q.limit = 1;
  q.descending = true;
  auto page = ledger_->query(q);
  ASSERT_TRUE(page.ok()) << page.status().to_string();
  ASSERT_EQ(page->entries.size(), 1u);
  std::vector<uint64_t> matches;  // in log order
  for (const auto& e : ref_) {
    if (e.issuer == "urn:dev:pump" && e.time_ms <= t) matches.push_back(e.index);
  }
  ASSERT_GE(matches.size(), 2u);
  EXPECT_EQ(page->entries[0].index, matches.back());
  EXPECT_LE(page->entries[0].registered_ms, t);
  // The next page starts just above the next older match.
  ASSERT_TRUE(page->next_cursor.has_value());
  EXPECT_EQ(*page->next_cursor, matches[matches.size() - 2] + 1);

  // A cursor above the log, and one at 1 (only index 0 below it).
  Query top;
  top.descending = true;
  top.cursor = ledger_->head().log_size + 100;
  top.limit = 2;
  page = ledger_->query(top);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].index, ledger_->head().log_size - 1);
  top.cursor = 1;
  page = ledger_->query(top);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].index, 0u);
  EXPECT_FALSE(page->next_cursor.has_value());
}

TEST_F(LedgerQueryTest, CursorAndLimitEdges) {
  Query q;
  q.limit = 0;  // clamped to 1
  auto page = ledger_->query(q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].index, 0u);
  ASSERT_TRUE(page->next_cursor.has_value());
  EXPECT_EQ(*page->next_cursor, 1u);

  q.limit = 5;
  q.cursor = ledger_->head().log_size - 2;
  page = ledger_->query(q);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->entries.size(), 2u);
  EXPECT_FALSE(page->next_cursor.has_value());

  q.cursor = ledger_->head().log_size + 100;
  page = ledger_->query(q);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->entries.empty());
  EXPECT_FALSE(page->next_cursor.has_value());

  // A page that ends exactly at the last match has no next cursor.
  Query all;
  all.limit = ledger_->head().log_size;
  page = ledger_->query(all);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->entries.size(), ledger_->head().log_size);
  EXPECT_FALSE(page->next_cursor.has_value());
}

// ---------------------------------------------------------------------------
// Restart

TEST_F(LedgerTest, ReopenRestoresHeadKeysAndSequenceNumbers) {
  const auto& admin = test_keys().admin;
  register_key(0);
  register_key(1, kRoleIssuer | kRoleOpaque);
  append(*ledger_, {sign(issuer_key(0), 1), sign(issuer_key(0), 2), sign(issuer_key(1), 7)},
         tick());
  Bytes replayable = sign(issuer_key(0), 3);
  append_one(*ledger_, replayable, tick());
  revoke_key(1);
  const Head before = ledger_->head();
  const size_t keys_before = ledger_->key_count();
  auto k0_before = ledger_->key(issuer_key(0).public_key().kid());
  ASSERT_TRUE(k0_before.ok());

  reopen();

  const Head after = ledger_->head();
  EXPECT_EQ(after.height, before.height);
  EXPECT_EQ(after.log_size, before.log_size);
  EXPECT_EQ(after.root, before.root);
  EXPECT_EQ(after.header_hash, before.header_hash);
  EXPECT_EQ(after.time_ms, before.time_ms);
  EXPECT_EQ(ledger_->key_count(), keys_before);
  auto k0 = ledger_->key(issuer_key(0).public_key().kid());
  ASSERT_TRUE(k0.ok());
  EXPECT_EQ(k0->last_sequence, 3u);
  EXPECT_EQ(k0->registered_index, k0_before->registered_index);
  EXPECT_EQ(k0->name, "issuer-0");
  auto k1 = ledger_->key(issuer_key(1).public_key().kid());
  ASSERT_TRUE(k1.ok());
  EXPECT_TRUE(k1->revoked());
  EXPECT_EQ(k1->last_sequence, 7u);
  EXPECT_EQ(k1->roles, static_cast<uint32_t>(kRoleIssuer | kRoleOpaque));
  EXPECT_EQ(ledger_->key(admin.public_key().kid())->last_sequence, admin_seq_);

  // A replay after the restart is still refused, exact bytes or not.
  auto r = append(*ledger_, {replayable, sign(issuer_key(0), 2)}, tick());
  EXPECT_EQ(r[0].status().code(), ErrorCode::kReplay);
  EXPECT_EQ(r[1].status().code(), ErrorCode::kReplay);
  EXPECT_EQ(admit_code(*ledger_, sign(issuer_key(1), 8)), ErrorCode::kRevokedKey);
  // And the log continues where it was.
  Registered next = append_one(*ledger_, sign(issuer_key(0), 4), tick());
  EXPECT_EQ(next.index, before.log_size);
  EXPECT_EQ(next.height, before.height + 1);
  EXPECT_EQ(ledger_->block(next.height)->header.prev_hash, before.header_hash);
  EXPECT_TRUE(ledger_->receipt(next.id).ok());
}

// ---------------------------------------------------------------------------
// Audit

class LedgerAuditTest : public LedgerTest {
 protected:
  // Blocks: 1 register key 0; 2 key 0 seq 1..3; 3 key 0 seq 4, 6 (gap);
  // 4 admin statements; 5 revoke key 0. Entries 0..8.
  void SetUp() override {
    LedgerTest::SetUp();
    const auto& admin = test_keys().admin;
    register_key(0);
    append(*ledger_, {sign(issuer_key(0), 1), sign(issuer_key(0), 2), sign(issuer_key(0), 3)},
           tick());
    append(*ledger_, {sign(issuer_key(0), 4), sign(issuer_key(0), 6)}, tick());
    append(*ledger_, {sign(admin, next_admin_seq()), sign(admin, next_admin_seq())}, tick());
    revoke_key(0);
    head_ = ledger_->head();
    ASSERT_EQ(head_.height, 5u);
    ASSERT_EQ(head_.log_size, 9u);
    close();
  }

  std::unique_ptr<storage::Store> open_store() {
    auto s = storage::Store::open(dir_.path() + "/db");
    if (!s.ok()) throw std::runtime_error(s.status().to_string());
    return std::move(s).value();
  }

  void put(Column c, ByteView key, ByteView value) {
    auto store = open_store();
    storage::WriteBatch wb;
    wb.put(c, key, value);
    ASSERT_TRUE(store->write(wb, true).ok());
  }
  void remove(Column c, ByteView key) {
    auto store = open_store();
    storage::WriteBatch wb;
    wb.remove(c, key);
    ASSERT_TRUE(store->write(wb, true).ok());
  }
  Bytes get(Column c, ByteView key) { return must(open_store()->get(c, key), "get"); }
  ErrorCode store_get_status(Column c, ByteView key) {
    return open_store()->get(c, key).status().code();
  }

  Status run_audit() {
    AuditReport report;
    return audit(dir_.path(), &report);
  }

  // The audit fails as corruption (or a bad block signature) naming `where`.
  void expect_audit_failure(const std::vector<std::string>& where,
                            std::set<ErrorCode> codes = {ErrorCode::kCorruption}) {
    Status s = run_audit();
    ASSERT_FALSE(s.ok()) << "tampering was not detected";
    EXPECT_TRUE(codes.count(s.code())) << s.to_string();
    for (const auto& w : where) EXPECT_NE(s.message().find(w), std::string::npos) << s.to_string();
  }

  Head head_;
};

TEST_F(LedgerAuditTest, PassesOnAGoodDataDirectory) {
  AuditReport report;
  int progress_calls = 0;
  Status s = audit(dir_.path(), &report, [&](const AuditReport&) { ++progress_calls; });
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(report.blocks, 6u);
  EXPECT_EQ(report.entries, 9u);
  EXPECT_EQ(report.keys, 2u);
  EXPECT_EQ(report.sequence_gaps, 1u);
  // Two per block, one per entry, one receipt signature per block after 0.
  EXPECT_EQ(report.receipt_signatures, 5u);
  EXPECT_EQ(report.signatures_verified, 2 * 6u + 9u + 5u);
  EXPECT_EQ(report.root_hex, to_hex(head_.root));
  EXPECT_GE(report.seconds, 0);
  EXPECT_GE(progress_calls, 1);
}

TEST_F(LedgerAuditTest, PassesBesideALiveLedger) {
  reopen();
  AuditReport report;
  Status s = audit(dir_.path(), &report);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST_F(LedgerAuditTest, FailsWithoutADataDirectory) {
  AuditReport report;
  EXPECT_FALSE(audit(dir_.path() + "/nothing-here", &report).ok());
}

TEST_F(LedgerAuditTest, DetectsAnEntryWithAlteredBytes) {
  // Entry 2 is in block 2. A flipped signature byte: no longer verifies.
  Bytes bytes = get(Column::kEntries, records::be64_key(2));
  put(Column::kEntries, records::be64_key(2), flip_last_byte(bytes));
  expect_audit_failure({"block 2", "entry 2"});
}

TEST_F(LedgerAuditTest, DetectsAnEntryReplacedByAnotherValidStatement) {
  // Correctly signed by the same key with the same sequence number, but not
  // what was registered: the id map and the block's Merkle root give it away.
  Fields f;
  f.subject = "forged";
  put(Column::kEntries, records::be64_key(2), sign(issuer_key(0), 2, f));
  expect_audit_failure({"block 2", "entry 2"});
}

TEST_F(LedgerAuditTest, LeafHashesAreNotStoredButDerivedFromEntries) {
  // Level 0 is computed from the entry (records.h): no record to lose, and a
  // changed entry changes the leaf, which the root check catches.
  EXPECT_EQ(store_get_status(Column::kNodes, records::node_key(0, 5)), ErrorCode::kNotFound);
  AuditReport report;
  Status s = audit(dir_.path(), &report);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST_F(LedgerAuditTest, DetectsADeletedInnerLogNode) {
  // Receipts and proofs are built from inner nodes, so the audit must check
  // them too. (1, 2) covers entries 4..5 and is completed by entry 5.
  remove(Column::kNodes, records::node_key(1, 2));
  expect_audit_failure({"block 3", "entry 5", "(1, 2)"});
}

TEST_F(LedgerAuditTest, DetectsAnAlteredInnerLogNode) {
  // (2, 0) covers entries 0..3 and is completed by entry 3, in block 2.
  put(Column::kNodes, records::node_key(2, 0), Bytes(32, 0xab));
  expect_audit_failure({"block 2", "entry 3", "(2, 0)"});
}

TEST_F(LedgerAuditTest, DetectsAChangedBlockHeader) {
  Bytes record = get(Column::kBlocks, records::be64_key(2));
  BlockRecord b = must(BlockRecord::decode(record), "decode block");
  b.header.time_ms += 1;
  b.header_bytes = b.header.encode();
  put(Column::kBlocks, records::be64_key(2), b.encode());
  expect_audit_failure({"block 2"}, {ErrorCode::kCorruption, ErrorCode::kBadSignature});
}

TEST_F(LedgerAuditTest, DetectsAResignedHeaderThatBreaksTheChain) {
  // Even the node key holder cannot rewrite one block alone: its successor
  // names the old header hash.
  Bytes record = get(Column::kBlocks, records::be64_key(2));
  BlockRecord b = must(BlockRecord::decode(record), "decode block");
  BlockHeader h = b.header;
  h.time_ms += 1;
  put(Column::kBlocks, records::be64_key(2), seal_block(h, test_keys().node, "node-1").encode());
  expect_audit_failure({"block 3", "chain"});
}

TEST_F(LedgerAuditTest, DetectsAnAlteredRootSignature) {
  Bytes record = get(Column::kBlocks, records::be64_key(4));
  BlockRecord b = must(BlockRecord::decode(record), "decode block");
  b.root_signature.back() ^= 1;
  put(Column::kBlocks, records::be64_key(4), b.encode());
  expect_audit_failure({"block 4"}, {ErrorCode::kCorruption, ErrorCode::kBadSignature});
}

TEST_F(LedgerAuditTest, DetectsAnAlteredReceiptSignature) {
  // Receipts are assembled from these records: a bad one would be served.
  Bytes key = records::be64_key(3);
  append_be32(key, 0);
  Bytes record = get(Column::kReceiptSigs, key);
  record.back() ^= 1;  // the last byte of the signature
  put(Column::kReceiptSigs, key, record);
  expect_audit_failure({"block 3", "receipt signature"});
}

TEST_F(LedgerAuditTest, DetectsAReceiptSignatureOfAnUnknownNode) {
  Bytes key = records::be64_key(2);
  Bytes good = get(Column::kReceiptSigs, [&] {
    Bytes k = key;
    append_be32(k, 0);
    return k;
  }());
  append_be32(key, 7);  // the genesis has one node
  put(Column::kReceiptSigs, key, good);
  expect_audit_failure({"block 2", "unknown node"});
}

TEST_F(LedgerAuditTest, DetectsAMissingBlock) {
  remove(Column::kBlocks, records::be64_key(3));
  expect_audit_failure({"block 3", "missing"});
}

TEST_F(LedgerAuditTest, DetectsAnEntryBeyondTheHead) {
  put(Column::kEntries, records::be64_key(head_.log_size), sign(test_keys().admin, 100));
  expect_audit_failure(
      {"entry " + std::to_string(head_.log_size), "block " + std::to_string(head_.height)});
}

TEST_F(LedgerAuditTest, DetectsAnIdMapPointingElsewhere) {
  Bytes e1 = get(Column::kEntries, records::be64_key(1));
  put(Column::kEntryIds, crypto::sha256(e1), records::EntryLocation{5, 3}.encode());
  expect_audit_failure({"block 2", "entry 1"});
}

// ---------------------------------------------------------------------------
// Property: append_block agrees with a reference model of the stateful
// policy on random submissions (sequence numbers with replays and gaps,
// duplicates, revocations), and the result passes the audit.

struct ModelKey {
  uint64_t last = 0;
  bool revoked = false;
};

// Creating a RocksDB directory costs more than a whole case, so a few cases
// share one ledger, each with fresh keys, which start without history. It is
// replaced when it grows (the audit of each case replays all of it, and key
// registrations are slow to replay), and after a failed case so that
// shrinking starts from a known state.
constexpr uint64_t kPropertyLogMax = 50;

struct PropertyLedger {
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<Ledger> ledger;
  uint64_t gaps = 0;  // sequence gaps registered so far, as the audit counts them
  void reset() {
    ledger.reset();  // before its directory goes
    dir.reset();
  }
};

// Never destroyed by static destruction, which may run after RocksDB's own
// statics are gone (a crash at exit); the environment below closes it.
PropertyLedger& shared_property_ledger() {
  static PropertyLedger* p = new PropertyLedger;
  return *p;
}

PropertyLedger& property_ledger() {
  PropertyLedger& p = shared_property_ledger();
  if (!p.ledger || p.ledger->head().log_size > kPropertyLogMax) {
    p.reset();
    p.dir = std::make_unique<TempDir>("custos-prop");
    p.ledger = must(Ledger::open(ledger_config(p.dir->path())), "open");
    p.gaps = 0;
  }
  return p;
}

class PropertyLedgerCleanup : public ::testing::Environment {
 public:
  void TearDown() override { shared_property_ledger().reset(); }
};
[[maybe_unused]] ::testing::Environment* const kPropertyLedgerCleanup =
    ::testing::AddGlobalTestEnvironment(new PropertyLedgerCleanup);

RC_GTEST_PROP(LedgerProperty, AppendBlockMatchesAReferenceModel, ()) {
  constexpr int kKeys = 3;
  PropertyLedger& shared = property_ledger();
  struct ResetOnFailure {
    PropertyLedger& p;
    bool passed = false;
    ~ResetOnFailure() {
      if (!passed) p.reset();
    }
  } guard{shared};
  Ledger& ledger = *shared.ledger;
  const auto& admin = test_keys().admin;
  const Hash256 admin_kid = admin.public_key().kid();
  uint64_t admin_seq = must(ledger.key(admin_kid), "admin key").last_sequence;
  uint64_t now = ledger.head().time_ms;
  std::vector<crypto::PrivateKey> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(new_key());

  std::map<Hash256, ModelKey> model;
  model[admin_kid].last = admin_seq;
  {
    std::vector<Bytes> regs;
    for (int i = 0; i < kKeys; ++i) {
      regs.push_back(registration(admin, ++admin_seq, keys[i].public_key(), kRoleIssuer,
                                  "k" + std::to_string(i)));
    }
    auto r = append(ledger, regs, now += 1000);
    for (auto& x : r) RC_ASSERT(x.ok());
    model[admin_kid].last = admin_seq;
    for (int i = 0; i < kKeys; ++i) model[keys[i].public_key().kid()] = {};
  }
  uint64_t next_index = ledger.head().log_size;
  std::vector<uint64_t> generated(kKeys, 0);  // highest sequence number signed per key
  std::vector<Bytes> history;                 // everything signed so far, for duplicates

  const int blocks = *rc::gen::inRange(1, 7);
  for (int block = 0; block < blocks; ++block) {
    const auto published = model;  // what admission sees: the state after the last block
    const int n = *rc::gen::inRange(1, 9);
    std::vector<Admitted> batch;
    std::vector<std::optional<Hash256>> revokes;  // the target, for revocations
    for (int j = 0; j < n; ++j) {
      const int what = *rc::gen::inRange(0, 10);
      Bytes bytes;
      if (what == 0 && !history.empty()) {
        bytes = history[*rc::gen::inRange<size_t>(0, history.size())];  // an exact resubmission
      } else if (what == 1) {
        const int i = *rc::gen::inRange(0, kKeys);
        bytes = revocation(admin, ++admin_seq, keys[i].public_key().kid());
      } else {
        const int i = *rc::gen::inRange(0, kKeys);
        uint64_t seq = 0;
        switch (*rc::gen::inRange(0, 4)) {
          case 0:  // a number already used, if any: a replay
            seq = generated[i] > 0 ? *rc::gen::inRange<uint64_t>(1, generated[i] + 1) : 1;
            break;
          case 1:  // a gap
            seq = generated[i] + *rc::gen::inRange<uint64_t>(2, 6);
            break;
          default:  // the next one
            seq = generated[i] + 1;
        }
        generated[i] = std::max(generated[i], seq);
        Fields f;
        f.subject = "s" + std::to_string(*rc::gen::inRange(0, 3));  // same seq, other bytes
        bytes = sign(keys[i], seq, f);
      }
      history.push_back(bytes);
      const cose::Statement st = must(cose::parse_statement(bytes), "parse");
      auto a = ledger.admit(bytes);
      if (published.at(st.header.kid).revoked) {
        RC_ASSERT(!a.ok());
        RC_ASSERT(a.status().code() == ErrorCode::kRevokedKey);
        continue;
      }
      RC_ASSERT(a.ok());
      batch.push_back(std::move(a).value());
      std::optional<Hash256> target;
      if (st.header.content_type == kTypeKeyRevoke) {
        target = must(parse_key_revocation(st.payload()), "revocation").kid;
      }
      revokes.push_back(target);
    }

    std::vector<Admitted> copy = batch;
    const Head before = ledger.head();
    const uint64_t t = *rc::gen::inRange<uint64_t>(now - 2000, now + 3000);  // may go back
    auto results = ledger.append_block(std::move(copy), t);
    RC_ASSERT(results.ok());
    RC_ASSERT(results->size() == batch.size());
    bool any = false;
    for (size_t j = 0; j < batch.size(); ++j) {
      const auto& h = batch[j].statement.header;
      ModelKey& key = model.at(h.kid);
      const auto& got = (*results)[j];
      std::optional<ErrorCode> refused;
      if (key.revoked) {
        refused = ErrorCode::kRevokedKey;
      } else if (h.sequence <= key.last) {
        refused = ErrorCode::kReplay;
      } else if (revokes[j] && model.at(*revokes[j]).revoked) {
        refused = ErrorCode::kConflict;
      }
      if (refused) {
        RC_ASSERT(!got.ok());
        RC_ASSERT(got.status().code() == *refused);
        continue;
      }
      RC_ASSERT(got.ok());
      RC_ASSERT(got->index == next_index);
      RC_ASSERT(got->height == before.height + 1);
      RC_ASSERT(got->id == batch[j].id);
      const bool gap = h.sequence != key.last + 1;
      RC_ASSERT(got->gap.has_value() == gap);
      if (gap) {
        ++shared.gaps;
        RC_ASSERT(got->gap->expected == key.last + 1);
        RC_ASSERT(got->gap->got == h.sequence);
      }
      key.last = h.sequence;
      if (revokes[j]) model.at(*revokes[j]).revoked = true;
      ++next_index;
      any = true;
    }
    const Head after = ledger.head();
    RC_ASSERT(after.height == before.height + (any ? 1 : 0));
    RC_ASSERT(after.log_size == next_index);
    if (any) now = std::max(now, t);
  }

  for (const auto& [kid, m] : model) {
    auto k = ledger.key(kid);
    RC_ASSERT(k.ok());
    RC_ASSERT(k->last_sequence == m.last);
    RC_ASSERT(k->revoked() == m.revoked);
  }
  // Beside the live ledger, as the audit would run beside a node.
  AuditReport report;
  Status s = audit(shared.dir->path(), &report);
  RC_ASSERT(s.ok());
  RC_ASSERT(report.entries == next_index);
  RC_ASSERT(report.sequence_gaps == shared.gaps);
  RC_ASSERT(report.keys == ledger.key_count());
  RC_ASSERT(report.root_hex == to_hex(ledger.head().root));
  guard.passed = true;
}

}  // namespace
}  // namespace custos::ledger
