// Property tests: random statements round-trip, and random single-byte
// corruption never yields a statement that both parses and verifies, except
// inside the unprotected header (which the signature does not cover).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <vector>

#include "codec/cbor.h"
#include "cose/sign1.h"
#include "cose/statement.h"
#include "crypto/keys.h"

namespace custos::cose {
namespace {

using crypto::Algorithm;
using crypto::PrivateKey;

// Key generation is slow next to signing; one key per algorithm is enough.
const PrivateKey& key_for(Algorithm alg) {
  static const PrivateKey kEs256 = *PrivateKey::generate(Algorithm::kES256);
  static const PrivateKey kEd25519 = *PrivateKey::generate(Algorithm::kEd25519);
  return alg == Algorithm::kES256 ? kEs256 : kEd25519;
}

// Non-empty UTF-8 (ASCII and multi-byte characters) of at most 256 bytes.
rc::Gen<std::string> gen_text() {
  return rc::gen::map(
      rc::gen::nonEmpty(rc::gen::container<std::vector<std::string>>(rc::gen::oneOf(
          rc::gen::map(rc::gen::inRange<int>(0x20, 0x7f),
                       [](int c) { return std::string(1, static_cast<char>(c)); }),
          rc::gen::element<std::string>("\xc3\xa9", "\xe2\x98\x83", "\xf0\x9d\x84\x9e")))),
      [](const std::vector<std::string>& parts) {
        std::string s;
        for (const auto& p : parts) {
          if (s.size() + p.size() > limits::kTextFieldBytesMax) break;
          s += p;
        }
        return s;
      });
}

struct Case {
  Algorithm alg;
  int64_t cose_alg;
  StatementHeader header;
  Bytes payload;
  cbor::Map unprotected;
};

rc::Gen<cbor::Map> gen_unprotected() {
  return rc::gen::mapcat(
      rc::gen::inRange<size_t>(0, limits::kUnprotectedHeaderEntriesMax + 1), [](size_t n) {
        return rc::gen::map(
            rc::gen::container<std::vector<int64_t>>(n, rc::gen::inRange<int64_t>(-50, 1000)),
            [](const std::vector<int64_t>& vals) {
              // Distinct labels away from the protected ones.
              cbor::Map m;
              for (size_t i = 0; i < vals.size(); ++i) {
                int64_t label = 1000 + static_cast<int64_t>(i) * 10;
                m.emplace_back(cbor::integer(label), cbor::integer(vals[i]));
              }
              return m;
            });
      });
}

Case gen_case() {
  Case c;
  int which = *rc::gen::inRange(0, 3);
  c.alg = which == 0 ? Algorithm::kES256 : Algorithm::kEd25519;
  c.cose_alg = which == 0 ? crypto::kCoseAlgES256
                          : (which == 1 ? crypto::kCoseAlgEd25519 : crypto::kCoseAlgEdDSA);
  c.header.cose_alg = c.cose_alg;
  c.header.content_type = *gen_text();
  c.header.issuer = *gen_text();
  c.header.subject = *gen_text();
  c.header.issued_at_s = *rc::gen::arbitrary<uint64_t>();
  c.header.sequence =
      *rc::gen::suchThat(rc::gen::arbitrary<uint64_t>(), [](uint64_t s) { return s > 0; });
  c.payload = *rc::gen::container<Bytes>(rc::gen::arbitrary<uint8_t>());
  if (*rc::gen::inRange(0, 4) == 0) c.unprotected = *gen_unprotected();
  return c;
}

// Signs the case; unprotected entries are added after signing, as a relay
// would (they are not covered by the signature).
Bytes make_statement(const Case& c) {
  Bytes bytes = sign_statement(key_for(c.alg), c.header, c.payload);
  if (c.unprotected.empty()) return bytes;
  auto sign1 = parse_sign1(bytes);
  RC_ASSERT(sign1.ok());
  sign1->unprotected = cbor::Value::map(c.unprotected);
  return encode_sign1(*sign1);
}

size_t head_size(size_t n) {
  return n < 24 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}

RC_GTEST_PROP(CoseProperty, RandomStatementsRoundTrip, ()) {
  const Case c = gen_case();
  const Bytes bytes = make_statement(c);
  auto st = parse_statement(bytes);
  RC_ASSERT(st.ok());
  RC_ASSERT(st->bytes == bytes);
  RC_ASSERT(st->header.alg == c.alg);
  RC_ASSERT(st->header.cose_alg == c.cose_alg);
  RC_ASSERT(st->header.kid == key_for(c.alg).public_key().kid());
  RC_ASSERT(st->header.content_type == c.header.content_type);
  RC_ASSERT(st->header.issuer == c.header.issuer);
  RC_ASSERT(st->header.subject == c.header.subject);
  RC_ASSERT(st->header.issued_at_s == c.header.issued_at_s);
  RC_ASSERT(st->header.sequence == c.header.sequence);
  RC_ASSERT(Bytes(st->payload().begin(), st->payload().end()) == c.payload);
  RC_ASSERT(st->sign1.unprotected.as_map().size() == c.unprotected.size());
  RC_ASSERT(verify_statement(*st, key_for(c.alg).public_key()).ok());
  // Re-encoding the parsed structure gives back the same bytes.
  RC_ASSERT(encode_sign1(st->sign1) == bytes);
  // The untagged form is the same statement.
  auto untagged = parse_statement(ByteView(bytes).subspan(1));
  RC_ASSERT(untagged.ok());
  RC_ASSERT(verify_statement(*untagged, key_for(c.alg).public_key()).ok());
}

RC_GTEST_PROP(CoseProperty, SingleByteCorruptionNeverVerifiesOutsideUnprotected, ()) {
  const Case c = gen_case();
  const Bytes bytes = make_statement(c);
  auto good = parse_statement(bytes);
  RC_ASSERT(good.ok());

  // Layout: d2 84 <bstr head> <protected> <unprotected map> <payload> <signature>.
  const size_t protected_len = good->sign1.protected_bytes.size();
  const size_t unprotected_begin = 2 + head_size(protected_len) + protected_len;
  const size_t unprotected_end = unprotected_begin + cbor::encode(good->sign1.unprotected).size();

  // Several corruptions per statement: signing dominates the cost. When
  // the statement has unprotected entries, aim half of them there, so the
  // "still verifies" branch is exercised too.
  bool any_verified = false;
  for (int round = 0; round < 32; ++round) {
    const bool aim = unprotected_end - unprotected_begin > 1 && *rc::gen::arbitrary<bool>();
    const size_t index = aim ? *rc::gen::inRange<size_t>(unprotected_begin, unprotected_end)
                             : *rc::gen::inRange<size_t>(0, bytes.size());
    const uint8_t flip = static_cast<uint8_t>(*rc::gen::inRange<int>(1, 256));
    Bytes bad = bytes;
    bad[index] ^= flip;

    auto st = parse_statement(bad);
    if (!st.ok()) continue;
    Status verified = verify_statement(*st, key_for(c.alg).public_key());
    if (!verified.ok()) {
      RC_ASSERT(verified.code() == ErrorCode::kBadSignature);
      continue;
    }
    any_verified = true;
    RC_ASSERT(index >= unprotected_begin);
    RC_ASSERT(index < unprotected_end);
  }
  RC_CLASSIFY(any_verified, "an unprotected-header corruption still verified");
}

}  // namespace
}  // namespace custos::cose
