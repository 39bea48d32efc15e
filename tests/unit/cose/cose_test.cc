#include <gtest/gtest.h>

#include <functional>
#include <iostream>
#include <string>

#include "codec/cbor.h"
#include "cose/receipt.h"
#include "cose/sign1.h"
#include "cose/statement.h"
#include "crypto/hash.h"
#include "crypto/keys.h"
#include "merkle/merkle.h"

namespace custos::cose {
namespace {

using crypto::Algorithm;
using crypto::PrivateKey;
using crypto::PublicKey;

// ---------------------------------------------------------------------------
// Fixtures and builders

// The RFC 8032 section 7.1 TEST 1 key: public, so the golden bytes below can
// be reproduced by anyone.
PrivateKey fixed_ed25519_key() {
  Bytes pkcs8 = *from_hex(
      "302e020100300506032b657004220420"
      "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
  std::string pem =
      "-----BEGIN PRIVATE KEY-----\n" + base64_encode(pkcs8) + "\n-----END PRIVATE KEY-----\n";
  auto key = PrivateKey::from_pem(pem);
  EXPECT_TRUE(key.ok()) << key.status().to_string();
  return std::move(key).value();
}

PrivateKey new_key(Algorithm alg) {
  auto key = PrivateKey::generate(alg);
  EXPECT_TRUE(key.ok()) << key.status().to_string();
  return std::move(key).value();
}

StatementHeader sample_header() {
  StatementHeader h;
  h.content_type = "application/cbor";
  h.issuer = "urn:custos:device:pump-7";
  h.subject = "infusion/rate";
  h.issued_at_s = 1767225600;  // 2026-01-01T00:00:00Z
  h.sequence = 1;
  return h;
}

Bytes sample_payload() {
  cbor::Map m;
  m.emplace_back(cbor::text("device"), cbor::text("pump-7"));
  m.emplace_back(cbor::text("rate_ml_h"), cbor::integer(12));
  return cbor::encode(cbor::Value::map(std::move(m)));
}

cbor::Value claims_map(const StatementHeader& h) {
  cbor::Map c;
  c.emplace_back(cbor::integer(kClaimIss), cbor::text(h.issuer));
  c.emplace_back(cbor::integer(kClaimSub), cbor::text(h.subject));
  c.emplace_back(cbor::integer(kClaimIat), cbor::Value::uint(h.issued_at_s));
  return cbor::Value::map(std::move(c));
}

// The protected header sign_statement writes, as a map to be edited by tests.
cbor::Map protected_map(const PrivateKey& key, const StatementHeader& h) {
  cbor::Map m;
  m.emplace_back(cbor::integer(kHeaderAlg), cbor::integer(crypto::cose_algorithm(key.algorithm())));
  m.emplace_back(cbor::integer(kHeaderContentType), cbor::text(h.content_type));
  m.emplace_back(cbor::integer(kHeaderKid), cbor::Value::bytes(ByteView(key.public_key().kid())));
  m.emplace_back(cbor::integer(kHeaderCwtClaims), claims_map(h));
  m.emplace_back(cbor::integer(kHeaderSequence), cbor::Value::uint(h.sequence));
  return m;
}

// A validly signed COSE_Sign1 over arbitrary protected bytes, so refusals are
// exercised with good signatures (the parser, not the signature, must say no).
Bytes build_raw(const PrivateKey& key, const Bytes& protected_bytes,
                cbor::Value unprotected = cbor::Value::map({}),
                std::optional<Bytes> payload = sample_payload(), bool tagged = true) {
  Sign1 s;
  s.protected_bytes = protected_bytes;
  s.unprotected = std::move(unprotected);
  s.payload = payload;
  s.signature =
      key.sign(sig_structure(protected_bytes, {}, payload ? ByteView(*payload) : ByteView()));
  Bytes out = encode_sign1(s);
  if (!tagged) out.erase(out.begin());  // 0xd2 is the one-byte tag 18 head
  return out;
}

Bytes build(const PrivateKey& key, cbor::Map map, cbor::Value unprotected = cbor::Value::map({}),
            std::optional<Bytes> payload = sample_payload()) {
  return build_raw(key, cbor::encode(cbor::Value::map(std::move(map))), std::move(unprotected),
                   std::move(payload));
}

void erase_key(cbor::Map& m, int64_t key) {
  std::erase_if(m, [&](const auto& kv) { return kv.first == cbor::integer(key); });
}

void set_key(cbor::Map& m, int64_t key, cbor::Value value) {
  erase_key(m, key);
  m.emplace_back(cbor::integer(key), std::move(value));
}

cbor::Value& claims_of(cbor::Map& m) {
  for (auto& [k, v] : m) {
    if (k == cbor::integer(kHeaderCwtClaims)) return v;
  }
  ADD_FAILURE() << "no claims";
  static cbor::Value none;
  return none;
}

// Expects a refusal with `code` whose message contains `needle`.
void expect_refused(ByteView bytes, ErrorCode code, const std::string& needle) {
  auto st = parse_statement(bytes);
  ASSERT_FALSE(st.ok()) << "accepted; expected: " << needle;
  EXPECT_EQ(st.status().code(), code) << st.status().to_string();
  EXPECT_NE(st.status().message().find(needle), std::string::npos)
      << "message: " << st.status().message() << "\nexpected to contain: " << needle;
}

std::string hex_of(const Hash256& h) {
  return to_hex(ByteView(h));
}

// ---------------------------------------------------------------------------
// Statements: round trips

class StatementTest : public ::testing::TestWithParam<Algorithm> {};
INSTANTIATE_TEST_SUITE_P(BothAlgorithms, StatementTest,
                         ::testing::Values(Algorithm::kES256, Algorithm::kEd25519),
                         [](const auto& info) {
                           return std::string(crypto::algorithm_name(info.param));
                         });

TEST_P(StatementTest, SignParseVerifyRoundTrip) {
  PrivateKey key = new_key(GetParam());
  StatementHeader h = sample_header();
  h.sequence = 42;
  Bytes payload = sample_payload();
  Bytes bytes = sign_statement(key, h, payload);

  auto st = parse_statement(bytes);
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_EQ(st->bytes, bytes);
  EXPECT_EQ(st->header.alg, GetParam());
  EXPECT_EQ(st->header.cose_alg, crypto::cose_algorithm(GetParam()));
  EXPECT_EQ(st->header.kid, key.public_key().kid());
  EXPECT_EQ(st->header.content_type, h.content_type);
  EXPECT_EQ(st->header.issuer, h.issuer);
  EXPECT_EQ(st->header.subject, h.subject);
  EXPECT_EQ(st->header.issued_at_s, h.issued_at_s);
  EXPECT_EQ(st->header.sequence, 42u);
  EXPECT_EQ(Bytes(st->payload().begin(), st->payload().end()), payload);
  EXPECT_TRUE(st->sign1.unprotected.is(cbor::Type::kMap));
  EXPECT_TRUE(st->sign1.unprotected.as_map().empty());
  EXPECT_EQ(st->sign1.signature.size(), 64u);
  Status v = verify_statement(*st, key.public_key());
  EXPECT_TRUE(v.ok()) << v.to_string();

  // The public key loaded from PEM verifies too.
  auto pub = PublicKey::from_pem(key.public_key().to_pem());
  ASSERT_TRUE(pub.ok());
  EXPECT_TRUE(verify_statement(*st, *pub).ok());
}

TEST_P(StatementTest, EmptyAndLargePayloads) {
  PrivateKey key = new_key(GetParam());
  for (size_t n : {size_t{0}, size_t{1}, size_t{23}, size_t{24}, size_t{256}, size_t{60000}}) {
    Bytes payload(n, 0x5a);
    Bytes bytes = sign_statement(key, sample_header(), payload);
    auto st = parse_statement(bytes);
    ASSERT_TRUE(st.ok()) << n << ": " << st.status().to_string();
    EXPECT_EQ(st->payload().size(), n);
    EXPECT_TRUE(verify_statement(*st, key.public_key()).ok()) << n;
  }
}

TEST_P(StatementTest, SignatureByAnotherKeyFails) {
  PrivateKey key = new_key(GetParam());
  PrivateKey other = new_key(GetParam());
  auto st = parse_statement(sign_statement(key, sample_header(), sample_payload()));
  ASSERT_TRUE(st.ok());
  // Another key: the kid does not match.
  Status s = verify_statement(*st, other.public_key());
  EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
  EXPECT_NE(s.message().find("kid " + hex_of(key.public_key().kid())), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find(hex_of(other.public_key().kid())), std::string::npos);

  // Another key's signature under this key's kid: the signature fails.
  Bytes forged = build(other, protected_map(key, sample_header()));
  auto fst = parse_statement(forged);
  ASSERT_TRUE(fst.ok()) << fst.status().to_string();
  s = verify_statement(*fst, key.public_key());
  EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
  EXPECT_NE(s.message().find("does not verify"), std::string::npos) << s.message();
}

TEST_P(StatementTest, FlippedPayloadByteFails) {
  PrivateKey key = new_key(GetParam());
  Bytes payload = sample_payload();
  Bytes bytes = sign_statement(key, sample_header(), payload);
  // The payload is the last bstr before the 64-byte signature and its 2-byte head.
  size_t payload_end = bytes.size() - 64 - 2;
  for (size_t i = payload_end - payload.size(); i < payload_end; ++i) {
    Bytes bad = bytes;
    bad[i] ^= 0x01;
    auto st = parse_statement(bad);
    ASSERT_TRUE(st.ok()) << st.status().to_string();
    EXPECT_EQ(verify_statement(*st, key.public_key()).code(), ErrorCode::kBadSignature) << i;
  }
}

TEST_P(StatementTest, FlippedSignatureByteFails) {
  PrivateKey key = new_key(GetParam());
  Bytes bytes = sign_statement(key, sample_header(), sample_payload());
  for (size_t i = bytes.size() - 64; i < bytes.size(); i += 7) {
    Bytes bad = bytes;
    bad[i] ^= 0x40;
    auto st = parse_statement(bad);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(verify_statement(*st, key.public_key()).code(), ErrorCode::kBadSignature);
  }
}

TEST_P(StatementTest, FlippedProtectedHeaderByteFailsParseOrVerify) {
  PrivateKey key = new_key(GetParam());
  auto good = parse_statement(sign_statement(key, sample_header(), sample_payload()));
  ASSERT_TRUE(good.ok());
  const Bytes& bytes = good->bytes;
  size_t start = 3;  // d2 84 58 <len>
  ASSERT_EQ(bytes[2], 0x58);
  size_t len = bytes[3];
  for (size_t i = start + 1; i < start + 1 + len; ++i) {
    Bytes bad = bytes;
    bad[i] ^= 0x01;
    auto st = parse_statement(bad);
    if (st.ok()) {
      EXPECT_FALSE(verify_statement(*st, key.public_key()).ok()) << i;
    }
  }
}

TEST(Statement, EdDsaMinus8Accepted) {
  PrivateKey key = new_key(Algorithm::kEd25519);
  StatementHeader h = sample_header();
  h.cose_alg = crypto::kCoseAlgEdDSA;
  Bytes bytes = sign_statement(key, h, sample_payload());
  auto st = parse_statement(bytes);
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_EQ(st->header.cose_alg, -8);
  EXPECT_EQ(st->header.alg, Algorithm::kEd25519);
  EXPECT_EQ(*st->sign1.protected_map.find(kHeaderAlg)->as_int64(), -8);
  EXPECT_TRUE(verify_statement(*st, key.public_key()).ok());

  // -8 with an ES256 key is replaced by the key's algorithm.
  PrivateKey ec = new_key(Algorithm::kES256);
  auto est = parse_statement(sign_statement(ec, h, sample_payload()));
  ASSERT_TRUE(est.ok());
  EXPECT_EQ(est->header.cose_alg, -7);
}

TEST(Statement, AlgorithmMismatchWithKeyFails) {
  // An Ed25519 key signing a header that claims ES256 under its own kid.
  PrivateKey key = new_key(Algorithm::kEd25519);
  cbor::Map m = protected_map(key, sample_header());
  set_key(m, kHeaderAlg, cbor::integer(-7));
  auto st = parse_statement(build(key, m));
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  Status s = verify_statement(*st, key.public_key());
  EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
  EXPECT_NE(s.message().find("ES256"), std::string::npos) << s.message();
}

// RFC 9052 section 4.2: COSE_Sign1 may appear with or without tag 18.
TEST(Statement, TaggedAndUntaggedBothParse) {
  PrivateKey key = new_key(Algorithm::kEd25519);
  Bytes tagged = sign_statement(key, sample_header(), sample_payload());
  ASSERT_EQ(tagged[0], 0xd2);
  ASSERT_EQ(tagged[1], 0x84);
  Bytes untagged(tagged.begin() + 1, tagged.end());
  auto a = parse_statement(tagged);
  auto b = parse_statement(untagged);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(b->bytes, untagged);
  EXPECT_TRUE(verify_statement(*a, key.public_key()).ok());
  EXPECT_TRUE(verify_statement(*b, key.public_key()).ok());
  // encode_sign1 always writes the tag.
  EXPECT_EQ(encode_sign1(b->sign1), tagged);
}

TEST(Statement, TypAndUnprotectedEntriesAccepted) {
  PrivateKey key = new_key(Algorithm::kEd25519);
  cbor::Map m = protected_map(key, sample_header());
  m.emplace_back(cbor::integer(16), cbor::text("application/example+cose"));
  cbor::Map unprotected;
  for (int i = 0; i < static_cast<int>(limits::kUnprotectedHeaderEntriesMax); ++i) {
    unprotected.emplace_back(cbor::integer(1000 + i), cbor::text("note"));
  }
  auto st = parse_statement(build(key, m, cbor::Value::map(unprotected)));
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_EQ(st->sign1.unprotected.as_map().size(), limits::kUnprotectedHeaderEntriesMax);
  EXPECT_TRUE(verify_statement(*st, key.public_key()).ok());
}

TEST(Statement, SigStructureMatchesGenericEncoder) {
  Bytes prot = {0xa1, 0x01, 0x27};
  for (size_t n : {size_t{0}, size_t{5}, size_t{24}, size_t{300}, size_t{70000}}) {
    Bytes payload(n, 7);
    Bytes aad = to_bytes("aad");
    cbor::Value expected =
        cbor::Value::array({cbor::text("Signature1"), cbor::Value::bytes(prot),
                            cbor::Value::bytes(aad), cbor::Value::bytes(payload)});
    EXPECT_EQ(sig_structure(prot, aad, payload), cbor::encode(expected)) << n;
  }
}

// ---------------------------------------------------------------------------
// Statements: refusals, one rule at a time

class StatementRefusal : public ::testing::Test {
 protected:
  PrivateKey key_ = new_key(Algorithm::kEd25519);
  StatementHeader header_ = sample_header();
  cbor::Map map() const { return protected_map(key_, header_); }
};

TEST_F(StatementRefusal, BaselineIsAccepted) {
  auto st = parse_statement(build(key_, map()));
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_TRUE(verify_statement(*st, key_.public_key()).ok());
}

TEST_F(StatementRefusal, MissingEachRequiredHeader) {
  const std::pair<int64_t, std::string> required[] = {
      {kHeaderAlg, "label 1 (alg) is missing"},
      {kHeaderContentType, "label 3 (content type) is missing"},
      {kHeaderKid, "label 4 (kid) is missing"},
      {kHeaderCwtClaims, "label 15 (CWT claims) is missing"},
      {kHeaderSequence, "label -65537 (sequence) is missing"},
  };
  for (const auto& [label, message] : required) {
    cbor::Map m = map();
    erase_key(m, label);
    SCOPED_TRACE(label);
    expect_refused(build(key_, m), ErrorCode::kMalformed, "protected header: " + message);
  }
  const std::pair<int64_t, std::string> claims[] = {
      {kClaimIss, "claim 1 (iss) is missing"},
      {kClaimSub, "claim 2 (sub) is missing"},
      {kClaimIat, "claim 6 (iat) is missing"},
  };
  for (const auto& [claim, message] : claims) {
    cbor::Map m = map();
    erase_key(claims_of(m).as_map(), claim);
    SCOPED_TRACE(claim);
    expect_refused(build(key_, m), ErrorCode::kMalformed,
                   "protected header: label 15 (CWT claims): " + message);
  }
}

TEST_F(StatementRefusal, WrongTypes) {
  struct Case {
    int64_t label;
    cbor::Value value;
    std::string message;
  };
  const Case cases[] = {
      {kHeaderAlg, cbor::text("EdDSA"), "label 1 (alg) must be an integer, got a text string"},
      {kHeaderContentType, cbor::integer(60), "label 3 (content type) must be a text string"},
      {kHeaderKid, cbor::text("kid"), "label 4 (kid) must be a 32-byte bstr, got a text string"},
      {kHeaderCwtClaims, cbor::Value::array({}), "label 15 (CWT claims) must be a map"},
      {kHeaderSequence, cbor::integer(-1), "label -65537 (sequence) must be an unsigned integer"},
      {kHeaderSequence, cbor::text("1"), "label -65537 (sequence) must be an unsigned integer"},
      {16, cbor::integer(1), "label 16 (typ) must be a text string"},
  };
  for (const Case& c : cases) {
    cbor::Map m = map();
    set_key(m, c.label, c.value);
    SCOPED_TRACE(c.message);
    expect_refused(build(key_, m), ErrorCode::kMalformed, c.message);
  }
  const Case claims[] = {
      {kClaimIss, cbor::integer(7), "claim 1 (iss) must be a text string"},
      {kClaimSub, cbor::Value::bytes(to_bytes("x")), "claim 2 (sub) must be a text string"},
      {kClaimIat, cbor::integer(-5), "claim 6 (iat) must be an unsigned integer"},
      {kClaimIat, cbor::Value::float64(1.5), "claim 6 (iat) must be an unsigned integer"},
      {kClaimIss, cbor::text(""), "claim 1 (iss) must not be empty"},
  };
  for (const Case& c : claims) {
    cbor::Map m = map();
    set_key(claims_of(m).as_map(), c.label, c.value);
    SCOPED_TRACE(c.message);
    expect_refused(build(key_, m), ErrorCode::kMalformed, c.message);
  }
  cbor::Map m = map();
  set_key(m, kHeaderContentType, cbor::text(""));
  expect_refused(build(key_, m), ErrorCode::kMalformed, "label 3 (content type) must not be empty");
}

TEST_F(StatementRefusal, KidLength) {
  for (size_t n : {0, 16, 31, 33, 64}) {
    cbor::Map m = map();
    set_key(m, kHeaderKid, cbor::Value::bytes(Bytes(n, 0xab)));
    expect_refused(build(key_, m), ErrorCode::kMalformed,
                   "protected header: label 4 (kid) must be a 32-byte bstr, got a " +
                       std::to_string(n) + "-byte bstr");
  }
}

TEST_F(StatementRefusal, UnsupportedAlgorithms) {
  for (int64_t alg : {-35, -36, -257, -37, 0, 1, -9}) {
    cbor::Map m = map();
    set_key(m, kHeaderAlg, cbor::integer(alg));
    expect_refused(build(key_, m), ErrorCode::kMalformed,
                   "label 1 (alg) " + std::to_string(alg) + " is not supported");
  }
}

TEST_F(StatementRefusal, SequenceZero) {
  header_.sequence = 0;
  expect_refused(sign_statement(key_, header_, sample_payload()), ErrorCode::kMalformed,
                 "protected header: label -65537 (sequence) must be at least 1");
}

TEST_F(StatementRefusal, DetachedPayload) {
  expect_refused(build(key_, map(), cbor::Value::map({}), std::nullopt), ErrorCode::kMalformed,
                 "payload is detached");
}

TEST_F(StatementRefusal, Oversize) {
  // Whole statement.
  Bytes big(limits::kStatementBytesMax, 0x11);
  expect_refused(sign_statement(key_, header_, big), ErrorCode::kTooLarge, "the limit is 65536");
  // Protected header (checked before its labels are looked at).
  cbor::Map m = map();
  m.emplace_back(cbor::integer(99), cbor::Value::bytes(Bytes(limits::kProtectedHeaderBytesMax, 0)));
  expect_refused(build(key_, m), ErrorCode::kTooLarge, "protected header is");
  // Text fields.
  std::string long_text(limits::kTextFieldBytesMax + 1, 'a');
  StatementHeader h = header_;
  h.content_type = long_text;
  expect_refused(sign_statement(key_, h, {}), ErrorCode::kTooLarge,
                 "label 3 (content type) is 257 bytes; the limit is 256");
  h = header_;
  h.issuer = long_text;
  expect_refused(sign_statement(key_, h, {}), ErrorCode::kTooLarge, "claim 1 (iss) is 257 bytes");
  h = header_;
  h.subject = long_text;
  expect_refused(sign_statement(key_, h, {}), ErrorCode::kTooLarge, "claim 2 (sub) is 257 bytes");
  // Exactly at the limit is fine.
  h = header_;
  h.issuer = std::string(limits::kTextFieldBytesMax, 'a');
  EXPECT_TRUE(parse_statement(sign_statement(key_, h, {})).ok());
}

TEST_F(StatementRefusal, NonDeterministicProtectedHeader) {
  Bytes det = cbor::encode(cbor::Value::map(map()));
  ASSERT_EQ(det[0], 0xa5);  // map of 5
  ASSERT_EQ(det[1], 0x01);  // key 1 (alg), shortest form
  // Key 1 written as 0x18 0x01 (a non-shortest integer).
  Bytes wide = det;
  wide[1] = 0x18;
  wide.insert(wide.begin() + 2, 0x01);
  expect_refused(build_raw(key_, wide), ErrorCode::kMalformed,
                 "protected header is not deterministic CBOR");
  // Keys out of order: move the first pair (1: alg) to the end.
  cbor::Value alg_value = cbor::integer(crypto::cose_algorithm(key_.algorithm()));
  Bytes alg_pair = {0x01};
  Bytes alg_enc = cbor::encode(alg_value);
  alg_pair.insert(alg_pair.end(), alg_enc.begin(), alg_enc.end());
  Bytes unsorted(det.begin(), det.begin() + 1);
  unsorted.insert(unsorted.end(), det.begin() + 1 + alg_pair.size(), det.end());
  unsorted.insert(unsorted.end(), alg_pair.begin(), alg_pair.end());
  ASSERT_EQ(unsorted.size(), det.size());
  expect_refused(build_raw(key_, unsorted), ErrorCode::kMalformed,
                 "protected header is not deterministic CBOR");
  // Not a map at all.
  expect_refused(build_raw(key_, cbor::encode(cbor::Value::array({}))), ErrorCode::kMalformed,
                 "protected header must be a map");
  // Empty protected header.
  expect_refused(build_raw(key_, {}), ErrorCode::kMalformed, "protected header is empty");
}

TEST_F(StatementRefusal, TrailingBytes) {
  Bytes bytes = build(key_, map());
  ASSERT_TRUE(parse_statement(bytes).ok());
  bytes.push_back(0x00);
  expect_refused(bytes, ErrorCode::kMalformed, "COSE_Sign1 is not well-formed CBOR");
}

TEST_F(StatementRefusal, Truncated) {
  Bytes bytes = build(key_, map());
  for (size_t n = 0; n < bytes.size(); n += 5) {
    EXPECT_FALSE(parse_statement(ByteView(bytes).first(n)).ok()) << n;
  }
}

TEST_F(StatementRefusal, ExtraProtectedLabel) {
  for (int64_t label : {2, 5, 7, 13, 33, 395, -1, -65538, 99}) {
    cbor::Map m = map();
    m.emplace_back(cbor::integer(label), cbor::integer(0));
    expect_refused(build(key_, m), ErrorCode::kMalformed,
                   "protected header: label " + std::to_string(label) + " is not allowed");
  }
  cbor::Map m = map();
  m.emplace_back(cbor::text("note"), cbor::integer(0));
  expect_refused(build(key_, m), ErrorCode::kMalformed, "label \"note\" is not allowed");
  // Unknown CWT claims too (4 = exp).
  m = map();
  claims_of(m).as_map().emplace_back(cbor::integer(4), cbor::integer(0));
  expect_refused(build(key_, m), ErrorCode::kMalformed,
                 "label 15 (CWT claims): claim 4 is not allowed");
}

TEST_F(StatementRefusal, UnprotectedHeader) {
  cbor::Map many;
  for (int i = 0; i <= static_cast<int>(limits::kUnprotectedHeaderEntriesMax); ++i) {
    many.emplace_back(cbor::integer(1000 + i), cbor::integer(i));
  }
  expect_refused(build(key_, map(), cbor::Value::map(many)), ErrorCode::kTooLarge,
                 "unprotected header has 17 entries; the limit is 16");
  expect_refused(build(key_, map(), cbor::Value::array({})), ErrorCode::kMalformed,
                 "unprotected header must be a map");
  cbor::Map dup;
  dup.emplace_back(cbor::integer(kHeaderKid), cbor::Value::bytes(Bytes(32, 0)));
  expect_refused(build(key_, map(), cbor::Value::map(dup)), ErrorCode::kMalformed,
                 "label 4 also appears in the protected header");
  cbor::Map bad_label;
  bad_label.emplace_back(cbor::Value::bytes(Bytes{1}), cbor::integer(1));
  expect_refused(build(key_, map(), cbor::Value::map(bad_label)), ErrorCode::kMalformed,
                 "must be an integer or a text string");
}

TEST_F(StatementRefusal, SignatureLength) {
  auto st = parse_statement(build(key_, map()));
  ASSERT_TRUE(st.ok());
  for (size_t n : {0, 63, 65, 72}) {
    Sign1 s = st->sign1;
    s.signature.resize(n);
    expect_refused(encode_sign1(s), ErrorCode::kMalformed,
                   "signature must be 64 bytes, got " + std::to_string(n));
  }
}

TEST_F(StatementRefusal, OuterStructure) {
  Bytes good = build(key_, map());
  auto st = parse_statement(good);
  ASSERT_TRUE(st.ok());
  const Sign1& s = st->sign1;
  auto enc = [](cbor::Value v) { return cbor::encode(v); };
  cbor::Value prot = cbor::Value::bytes(s.protected_bytes);
  cbor::Value unprot = cbor::Value::map({});
  cbor::Value payload = cbor::Value::bytes(*s.payload);
  cbor::Value sig = cbor::Value::bytes(s.signature);

  expect_refused(enc(cbor::Value::tag(17, cbor::Value::array({prot, unprot, payload, sig}))),
                 ErrorCode::kMalformed, "tag 17 is not 18");
  expect_refused(enc(cbor::Value::tag(18, cbor::Value::array({prot, unprot, payload}))),
                 ErrorCode::kMalformed, "must be an array of 4");
  expect_refused(enc(cbor::Value::map({})), ErrorCode::kMalformed, "must be an array of 4");
  expect_refused(enc(cbor::Value::array({cbor::Value::map({}), unprot, payload, sig})),
                 ErrorCode::kMalformed, "protected header must be a bstr");
  expect_refused(enc(cbor::Value::array({prot, unprot, cbor::text("x"), sig})),
                 ErrorCode::kMalformed, "payload must be a bstr or nil");
  expect_refused(enc(cbor::Value::array({prot, unprot, payload, cbor::Value::null()})),
                 ErrorCode::kMalformed, "signature must be a bstr");
  expect_refused(enc(cbor::Value::tag(
                     18, cbor::Value::tag(18, cbor::Value::array({prot, unprot, payload, sig})))),
                 ErrorCode::kMalformed, "must be an array of 4");
  expect_refused({}, ErrorCode::kMalformed, "COSE_Sign1");
  expect_refused(Bytes{0xff}, ErrorCode::kMalformed, "COSE_Sign1");
}

// ---------------------------------------------------------------------------
// Golden bytes (for docs/formats.md): fixed key, fixed header, fixed payload.

constexpr const char* kGoldenStatementHex =
    "d2845870a5013203706170706c69636174696f6e2f63626f7204582006e3fd8f"
    "da29bb60ab59557de61edb0aecdb231134be30e75b455f8e1b792fa90fa30178"
    "1875726e3a637573746f733a6465766963653a70756d702d37026d696e667573"
    "696f6e2f72617465061a6955b9003a0001000001a0581aa26664657669636566"
    "70756d702d3769726174655f6d6c5f680c5840081e1ee1e32d011686b17f8385"
    "43818bbb1d7fd3821f1442497f594eb9d98d5324e464ba1a38634003ff37797d"
    "c5e5df2271abd8e2cf268e397b93d594907c07";

TEST(Golden, FixedEd25519Statement) {
  PrivateKey key = fixed_ed25519_key();
  Bytes bytes = sign_statement(key, sample_header(), sample_payload());
  auto decoded = cbor::decode(bytes);
  ASSERT_TRUE(decoded.ok());
  std::cout << "golden statement hex: " << to_hex(bytes) << "\n"
            << "golden statement diagnostic: " << cbor::diagnostic(*decoded) << "\n"
            << "golden kid: " << hex_of(key.public_key().kid()) << "\n";
  auto st = parse_statement(bytes);
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  auto prot = cbor::decode(st->sign1.protected_bytes);
  ASSERT_TRUE(prot.ok());
  std::cout << "golden protected header diagnostic: " << cbor::diagnostic(*prot) << "\n";
  EXPECT_TRUE(verify_statement(*st, key.public_key()).ok());
  EXPECT_EQ(to_hex(bytes), kGoldenStatementHex);
}

// ---------------------------------------------------------------------------
// Receipts

struct Log {
  PrivateKey node;
  std::vector<Bytes> statements;
  merkle::MemoryTree tree;
  Bytes protected_bytes;
  Bytes root_signature;
  std::vector<Bytes> receipts;
};

ReceiptHeader receipt_header(const PrivateKey& node) {
  ReceiptHeader h;
  h.alg = node.algorithm();
  h.kid = node.public_key().kid();
  h.issuer = "custos-test-node";
  h.issued_at_s = 1767225600;
  return h;
}

std::unique_ptr<Log> make_log(Algorithm alg, size_t n) {
  auto log = std::make_unique<Log>(Log{new_key(alg), {}, {}, {}, {}, {}});
  PrivateKey device = new_key(Algorithm::kEd25519);
  for (size_t i = 0; i < n; ++i) {
    StatementHeader h = sample_header();
    h.sequence = i + 1;
    log->statements.push_back(sign_statement(device, h, to_bytes("reading " + std::to_string(i))));
    log->tree.append(log->statements.back());
  }
  log->protected_bytes = receipt_protected_bytes(receipt_header(log->node));
  log->root_signature = sign_root(log->node, log->protected_bytes, log->tree.root());
  for (size_t i = 0; i < n; ++i) {
    auto path = merkle::inclusion_proof(log->tree, i, n);
    EXPECT_TRUE(path.ok()) << path.status().to_string();
    InclusionProof proof{n, i, *path};
    log->receipts.push_back(encode_receipt(log->protected_bytes, proof, log->root_signature));
  }
  return log;
}

Receipt parsed(const Bytes& bytes) {
  auto r = parse_receipt(bytes);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return std::move(r).value();
}

class ReceiptTest : public ::testing::TestWithParam<Algorithm> {};
INSTANTIATE_TEST_SUITE_P(BothAlgorithms, ReceiptTest,
                         ::testing::Values(Algorithm::kES256, Algorithm::kEd25519),
                         [](const auto& info) {
                           return std::string(crypto::algorithm_name(info.param));
                         });

TEST_P(ReceiptTest, EveryReceiptOfEveryTreeSizeVerifies) {
  for (size_t n : {1, 2, 3, 4, 5, 7, 8, 13, 16, 17}) {
    auto log = make_log(GetParam(), n);
    for (size_t i = 0; i < n; ++i) {
      Receipt r = parsed(log->receipts[i]);
      EXPECT_EQ(r.header.alg, GetParam());
      EXPECT_EQ(r.header.kid, log->node.public_key().kid());
      EXPECT_EQ(r.header.issuer, "custos-test-node");
      EXPECT_EQ(r.header.issued_at_s, 1767225600u);
      EXPECT_EQ(r.proof.tree_size, n);
      EXPECT_EQ(r.proof.leaf_index, i);
      EXPECT_EQ(r.protected_bytes, log->protected_bytes);
      EXPECT_EQ(r.signature, log->root_signature);
      Status s = verify_receipt(r, log->statements[i], log->node.public_key());
      EXPECT_TRUE(s.ok()) << n << "/" << i << ": " << s.to_string();
      // Another statement of the same log does not match this receipt.
      if (n > 1) {
        Status w = verify_receipt(r, log->statements[(i + 1) % n], log->node.public_key());
        EXPECT_EQ(w.code(), ErrorCode::kBadSignature) << n << "/" << i;
      }
    }
  }
}

TEST_P(ReceiptTest, StructureMatchesRfc9942) {
  auto log = make_log(GetParam(), 5);
  const Bytes& bytes = log->receipts[3];
  EXPECT_EQ(bytes[0], 0xd2);  // tag 18
  auto v = cbor::decode(bytes);
  ASSERT_TRUE(v.ok());
  const cbor::Array& parts = v->tag_content().as_array();
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_TRUE(parts[2].is(cbor::Type::kNull));  // detached payload
  auto prot = cbor::decode(parts[0].as_bytes());
  ASSERT_TRUE(prot.ok());
  EXPECT_EQ(*prot->find(kHeaderAlg)->as_int64(), crypto::cose_algorithm(GetParam()));
  EXPECT_EQ(prot->find(kHeaderVds)->as_uint(), 1u);
  EXPECT_EQ(prot->find(kHeaderKid)->as_bytes().size(), 32u);
  const cbor::Value* claims = prot->find(kHeaderCwtClaims);
  ASSERT_NE(claims, nullptr);
  EXPECT_EQ(claims->find(kClaimIss)->as_text(), "custos-test-node");
  const cbor::Value* vdp = parts[1].find(kHeaderVdp);
  ASSERT_NE(vdp, nullptr);
  const cbor::Value* inclusion = vdp->find(kVdpInclusion);
  ASSERT_NE(inclusion, nullptr);
  ASSERT_EQ(inclusion->as_array().size(), 1u);
  auto proof = cbor::decode(inclusion->as_array()[0].as_bytes());
  ASSERT_TRUE(proof.ok());
  EXPECT_EQ(proof->as_array()[0].as_uint(), 5u);
  EXPECT_EQ(proof->as_array()[1].as_uint(), 3u);
  // Sig_structure over (protected, h'', root) verifies with the plain key API.
  Bytes tbs = sig_structure(parts[0].as_bytes(), {}, ByteView(log->tree.root()));
  EXPECT_TRUE(log->node.public_key().verify(tbs, parts[3].as_bytes()).ok());
}

TEST_P(ReceiptTest, TamperingGivesPreciseErrors) {
  auto log = make_log(GetParam(), 13);
  const size_t i = 6;
  const Bytes& statement = log->statements[i];
  const PublicKey& node = log->node.public_key();
  const Receipt good = parsed(log->receipts[i]);
  ASSERT_TRUE(verify_receipt(good, statement, node).ok());

  // A proof hash changed: another root, whose signature does not verify.
  for (size_t h = 0; h < good.proof.path.size(); ++h) {
    Receipt r = good;
    r.proof.path[h][0] ^= 1;
    Status s = verify_receipt(r, statement, node);
    EXPECT_EQ(s.code(), ErrorCode::kBadSignature) << h;
    EXPECT_NE(s.message().find("receipt signature does not verify over the root"),
              std::string::npos)
        << s.message();
  }
  // A hash missing or added: the proof has the wrong shape.
  {
    Receipt r = good;
    r.proof.path.pop_back();
    Status s = verify_receipt(r, statement, node);
    EXPECT_EQ(s.code(), ErrorCode::kMalformed) << s.to_string();
    EXPECT_NE(s.message().find("receipt inclusion proof (leaf_index 6, tree_size 13)"),
              std::string::npos)
        << s.message();
    r = good;
    r.proof.path.push_back(Hash256{});
    EXPECT_EQ(verify_receipt(r, statement, node).code(), ErrorCode::kMalformed);
  }
  // Another leaf index or tree size.
  for (uint64_t index : {0, 5, 7, 12}) {
    Receipt r = good;
    r.proof.leaf_index = index;
    Status s = verify_receipt(r, statement, node);
    EXPECT_FALSE(s.ok()) << index;
    EXPECT_TRUE(s.code() == ErrorCode::kBadSignature || s.code() == ErrorCode::kMalformed);
  }
  {
    Receipt r = good;
    r.proof.leaf_index = 13;
    Status s = verify_receipt(r, statement, node);
    EXPECT_EQ(s.code(), ErrorCode::kMalformed) << s.to_string();
  }
  // A tree size that changes the proof's shape is refused...
  for (uint64_t size : {7, 8, 1000}) {
    Receipt r = good;
    r.proof.tree_size = size;
    EXPECT_EQ(verify_receipt(r, statement, node).code(), ErrorCode::kMalformed) << size;
  }
  // ...but one that keeps it (leaf 6 of 13 has the path shape of leaf 6 of
  // 12..16) yields the same root: RFC 9942 signs only the root, so tree_size
  // and leaf_index are bound only as far as the path shape binds them. See
  // TreeSizeIsBoundOnlyByPathShape.
  for (uint64_t size : {12, 14, 16}) {
    Receipt r = good;
    r.proof.tree_size = size;
    EXPECT_TRUE(verify_receipt(r, statement, node).ok()) << size;
  }
  // The signature.
  {
    Receipt r = good;
    r.signature[20] ^= 0x08;
    Status s = verify_receipt(r, statement, node);
    EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
    EXPECT_NE(s.message().find("receipt signature does not verify"), std::string::npos);
  }
  // Another node key.
  {
    PrivateKey other = new_key(GetParam());
    Status s = verify_receipt(good, statement, other.public_key());
    EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
    EXPECT_EQ(s.message(), "receipt signed by kid " + hex_of(node.kid()) + ", expected " +
                               hex_of(other.public_key().kid()));
  }
  // A kid in the receipt that is not the node's.
  {
    Receipt r = good;
    r.header.kid[0] ^= 1;
    Status s = verify_receipt(r, statement, node);
    EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
    EXPECT_NE(s.message().find("receipt signed by kid"), std::string::npos);
  }
  // The statement.
  {
    Bytes st = statement;
    st[st.size() - 1] ^= 1;
    EXPECT_EQ(verify_receipt(good, st, node).code(), ErrorCode::kBadSignature);
  }
}

// Single-byte corruption of a receipt never verifies, except where RFC 9942
// leaves a field unsigned: tree_size within the range that keeps the path
// shape. The statement's position (leaf_index) and the signed root are never
// changed by a corruption that still verifies.
TEST_P(ReceiptTest, TamperedBytesNeverVerify) {
  auto log = make_log(GetParam(), 6);
  const Bytes& bytes = log->receipts[2];
  const Receipt good = parsed(bytes);
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t flip : {0x01, 0x02, 0x10, 0x80}) {
      Bytes bad = bytes;
      bad[i] ^= flip;
      auto r = parse_receipt(bad);
      if (!r.ok()) continue;
      if (!verify_receipt(*r, log->statements[2], log->node.public_key()).ok()) continue;
      EXPECT_EQ(r->proof.leaf_index, good.proof.leaf_index) << i;
      EXPECT_EQ(r->proof.path, good.proof.path) << i;
      EXPECT_EQ(r->protected_bytes, good.protected_bytes) << i;
      EXPECT_NE(r->proof.tree_size, good.proof.tree_size) << i;
    }
  }
}

// Documents a property of the RFC 9942 format rather than of this code: the
// node signs the root, not the tree size, so a receipt for leaf 2 of a
// 6-leaf tree also verifies when it claims 5, 7 or 8 leaves (same path shape:
// [leaf 3, node(0..1), right part]).
// Consumers must not trust tree_size from a receipt alone; compare the root
// with a signed checkpoint of known size instead.
TEST_P(ReceiptTest, TreeSizeIsBoundOnlyByPathShape) {
  auto log = make_log(GetParam(), 6);
  Receipt r = parsed(log->receipts[2]);
  for (uint64_t size : {5, 7, 8}) {
    r.proof.tree_size = size;
    EXPECT_TRUE(verify_receipt(r, log->statements[2], log->node.public_key()).ok()) << size;
  }
  for (uint64_t size : {3, 4, 9}) {  // other shapes
    r.proof.tree_size = size;
    EXPECT_FALSE(verify_receipt(r, log->statements[2], log->node.public_key()).ok()) << size;
  }
}

// custos binds the tree size in the protected header (label -65538), so the
// path-shape ambiguity above is closed for its receipts.
TEST_P(ReceiptTest, SignedTreeSizeMustMatchTheProof) {
  auto log = make_log(GetParam(), 6);
  ReceiptHeader h = receipt_header(log->node);
  h.tree_size = 6;
  Bytes protected_bytes = receipt_protected_bytes(h);
  Bytes signature = sign_root(log->node, protected_bytes, log->tree.root());
  auto path = merkle::inclusion_proof(log->tree, 2, 6);
  ASSERT_TRUE(path.ok());
  Receipt r = parsed(encode_receipt(protected_bytes, InclusionProof{6, 2, *path}, signature));
  ASSERT_EQ(r.header.tree_size, std::optional<uint64_t>(6));
  EXPECT_TRUE(verify_receipt(r, log->statements[2], log->node.public_key()).ok());
  for (uint64_t size : {5, 7, 8}) {  // same path shape, refused now
    r.proof.tree_size = size;
    Status s = verify_receipt(r, log->statements[2], log->node.public_key());
    EXPECT_EQ(s.code(), ErrorCode::kBadSignature) << size;
    EXPECT_NE(s.message().find("receipt signs tree size 6"), std::string::npos) << s.message();
  }
}

// Receipts assembled by hand to hit each parse rule.
class ReceiptRefusal : public ::testing::Test {
 protected:
  PrivateKey node_ = new_key(Algorithm::kEd25519);
  Hash256 root_ = crypto::sha256(as_view("root"));

  cbor::Map header_map() const {
    auto v = cbor::decode(receipt_protected_bytes(receipt_header(node_)));
    EXPECT_TRUE(v.ok());
    return v->as_map();
  }
  static Bytes proof_bytes(uint64_t size, uint64_t index, size_t hashes, size_t hash_len = 32) {
    cbor::Array path;
    for (size_t i = 0; i < hashes; ++i) path.push_back(cbor::Value::bytes(Bytes(hash_len, 0x33)));
    return cbor::encode(cbor::Value::array(
        {cbor::Value::uint(size), cbor::Value::uint(index), cbor::Value::array(path)}));
  }
  static cbor::Value vdp(cbor::Array proofs, int64_t type = kVdpInclusion) {
    cbor::Map inner;
    inner.emplace_back(cbor::integer(type), cbor::Value::array(std::move(proofs)));
    cbor::Map outer;
    outer.emplace_back(cbor::integer(kHeaderVdp), cbor::Value::map(std::move(inner)));
    return cbor::Value::map(std::move(outer));
  }
  static cbor::Value one_proof(Bytes p) { return vdp({cbor::Value::bytes(std::move(p))}); }

  Bytes build(cbor::Map header, cbor::Value unprotected,
              std::optional<Bytes> payload = std::nullopt) const {
    Sign1 s;
    s.protected_bytes = cbor::encode(cbor::Value::map(std::move(header)));
    s.unprotected = std::move(unprotected);
    s.payload = std::move(payload);
    s.signature = sign_root(node_, s.protected_bytes, root_);
    return encode_sign1(s);
  }

  void refused(const Bytes& bytes, ErrorCode code, const std::string& needle) const {
    auto r = parse_receipt(bytes);
    ASSERT_FALSE(r.ok()) << "accepted; expected: " << needle;
    EXPECT_EQ(r.status().code(), code) << r.status().to_string();
    EXPECT_NE(r.status().message().find(needle), std::string::npos)
        << "message: " << r.status().message() << "\nexpected to contain: " << needle;
  }
};

TEST_F(ReceiptRefusal, BaselineIsAccepted) {
  auto r = parse_receipt(build(header_map(), one_proof(proof_bytes(8, 3, 3))));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->proof.path.size(), 3u);
}

TEST_F(ReceiptRefusal, ProtectedHeader) {
  for (int64_t label : {kHeaderAlg, kHeaderKid, kHeaderCwtClaims, kHeaderVds}) {
    cbor::Map m = header_map();
    erase_key(m, label);
    refused(build(m, one_proof(proof_bytes(8, 3, 3))), ErrorCode::kMalformed,
            "receipt protected header: label " + std::to_string(label));
  }
  cbor::Map m = header_map();
  set_key(m, kHeaderVds, cbor::integer(2));
  refused(build(m, one_proof(proof_bytes(8, 3, 3))), ErrorCode::kMalformed,
          "label 395 (vds) must be 1 (RFC9162_SHA256), got 2");
  m = header_map();
  set_key(m, kHeaderKid, cbor::Value::bytes(Bytes(20, 1)));
  refused(build(m, one_proof(proof_bytes(8, 3, 3))), ErrorCode::kMalformed,
          "label 4 (kid) must be a 32-byte bstr, got a 20-byte bstr");
  m = header_map();
  set_key(m, kHeaderAlg, cbor::integer(-35));
  refused(build(m, one_proof(proof_bytes(8, 3, 3))), ErrorCode::kMalformed,
          "label 1 (alg) -35 is not supported");
  m = header_map();
  set_key(m, kHeaderContentType, cbor::text("x"));
  refused(build(m, one_proof(proof_bytes(8, 3, 3))), ErrorCode::kMalformed,
          "label 3 is not allowed");
  m = header_map();
  erase_key(claims_of(m).as_map(), kClaimIat);
  refused(build(m, one_proof(proof_bytes(8, 3, 3))), ErrorCode::kMalformed,
          "claim 6 (iat) is missing");
}

TEST_F(ReceiptRefusal, Proofs) {
  refused(build(header_map(), cbor::Value::map({})), ErrorCode::kMalformed,
          "label 396 (vdp) is missing");
  refused(build(header_map(), vdp({})), ErrorCode::kMalformed, "must be an array of exactly one");
  refused(build(header_map(), vdp({cbor::Value::bytes(proof_bytes(8, 3, 3)),
                                   cbor::Value::bytes(proof_bytes(8, 4, 3))})),
          ErrorCode::kMalformed, "must be an array of exactly one bstr, got an array of 2");
  refused(build(header_map(), vdp({cbor::Value::bytes(proof_bytes(8, 3, 3))}, kVdpConsistency)),
          ErrorCode::kMalformed, "proof type -2 is not allowed");
  refused(build(header_map(), one_proof(proof_bytes(8, 3, 3, 31))), ErrorCode::kMalformed,
          "path hash 0 must be a 32-byte bstr, got a 31-byte bstr");
  refused(build(header_map(), one_proof(proof_bytes(8, 3, limits::kProofHashesMax + 1))),
          ErrorCode::kTooLarge, "path has 65 hashes; the limit is 64");
  refused(build(header_map(), one_proof(proof_bytes(8, 8, 3))), ErrorCode::kMalformed,
          "leaf_index 8 is not below tree_size 8");
  refused(build(header_map(), one_proof(proof_bytes(0, 0, 0))), ErrorCode::kMalformed,
          "leaf_index 0 is not below tree_size 0");
  refused(build(header_map(), one_proof(to_bytes("garbage"))), ErrorCode::kMalformed,
          "receipt inclusion proof is not deterministic CBOR");
  refused(build(header_map(), one_proof(cbor::encode(cbor::Value::array({})))),
          ErrorCode::kMalformed, "must be an array of 3");
  cbor::Map extra;
  extra.emplace_back(cbor::integer(kHeaderVdp), vdp({}).as_map()[0].second);
  extra.emplace_back(cbor::integer(7), cbor::integer(1));
  refused(build(header_map(), cbor::Value::map(extra)), ErrorCode::kMalformed,
          "receipt unprotected header: label 7 is not allowed");
}

TEST_F(ReceiptRefusal, PayloadSignatureAndSize) {
  refused(build(header_map(), one_proof(proof_bytes(8, 3, 3)), Bytes(32, 0)), ErrorCode::kMalformed,
          "receipt payload must be nil (detached)");
  auto r = parse_sign1(build(header_map(), one_proof(proof_bytes(8, 3, 3))));
  ASSERT_TRUE(r.ok());
  Sign1 s = *r;
  s.signature.resize(10);
  refused(encode_sign1(s), ErrorCode::kMalformed, "receipt signature must be 64 bytes, got 10");
  Bytes big = build(header_map(), one_proof(proof_bytes(8, 3, 3)));
  big.resize(limits::kReceiptBytesMax + 1);
  refused(big, ErrorCode::kTooLarge, "the limit is 8192");
}

TEST(Receipt, ProtectedBytesAreDeterministic) {
  PrivateKey node = fixed_ed25519_key();
  Bytes a = receipt_protected_bytes(receipt_header(node));
  auto v = cbor::decode(a);  // strict decode: deterministic
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_EQ(cbor::encode(*v), a);
  EXPECT_EQ(v->as_map().size(), 4u);
}

// ---------------------------------------------------------------------------
// Consistency proofs

TEST(ConsistencyProof, EncodeDecodeRoundTripAndVerify) {
  merkle::MemoryTree tree;
  std::vector<Hash256> roots = {Hash256{}};
  for (int i = 0; i < 21; ++i) {
    tree.append(to_bytes("entry " + std::to_string(i)));
    roots.push_back(tree.root());
  }
  for (uint64_t size1 = 1; size1 <= 21; ++size1) {
    for (uint64_t size2 = size1; size2 <= 21; size2 += 3) {
      auto path = merkle::consistency_proof(tree, size1, size2);
      ASSERT_TRUE(path.ok()) << path.status().to_string();
      ConsistencyProof proof{size1, size2, *path};
      Bytes enc = encode_consistency_proof(proof);
      auto dec = decode_consistency_proof(enc);
      ASSERT_TRUE(dec.ok()) << dec.status().to_string();
      EXPECT_EQ(dec->size1, size1);
      EXPECT_EQ(dec->size2, size2);
      EXPECT_EQ(dec->path, proof.path);
      EXPECT_EQ(encode_consistency_proof(*dec), enc);
      Status s =
          merkle::verify_consistency(dec->size1, dec->size2, roots[size1], roots[size2], dec->path);
      EXPECT_TRUE(s.ok()) << size1 << "->" << size2 << ": " << s.to_string();
    }
  }
}

TEST(ConsistencyProof, DecodeRefusals) {
  auto refused = [](const Bytes& b, const std::string& needle) {
    auto r = decode_consistency_proof(b);
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  auto proof = [](cbor::Value a, cbor::Value b, cbor::Array path) {
    return cbor::encode(cbor::Value::array({a, b, cbor::Value::array(std::move(path))}));
  };
  refused(proof(cbor::Value::uint(0), cbor::Value::uint(3), {}), "0 < size1 <= size2");
  refused(proof(cbor::Value::uint(4), cbor::Value::uint(3), {}), "0 < size1 <= size2");
  refused(proof(cbor::integer(-1), cbor::Value::uint(3), {}), "size1 must be an unsigned integer");
  refused(proof(cbor::Value::uint(1), cbor::text("3"), {}), "size2 must be an unsigned integer");
  refused(proof(cbor::Value::uint(1), cbor::Value::uint(3), {cbor::Value::bytes(Bytes(33, 0))}),
          "path hash 0 must be a 32-byte bstr");
  refused({}, "consistency proof is not deterministic CBOR");
  Bytes wide = proof(cbor::Value::uint(1), cbor::Value::uint(3), {});
  wide[1] = 0x18;  // 1 as 0x18 0x01
  wide.insert(wide.begin() + 2, 0x01);
  refused(wide, "consistency proof is not deterministic CBOR");
}

}  // namespace
}  // namespace custos::cose
