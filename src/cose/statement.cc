#include "cose/statement.h"

#include "cose/internal.h"

namespace custos::cose {

namespace {

using internal::Field;

// RFC 9596 "typ": the only optional protected label.
constexpr int64_t kHeaderTyp = 16;

constexpr std::string_view kProtected = "protected header";
constexpr std::string_view kClaims = "protected header: label 15 (CWT claims)";

constexpr Field kAlgField{kProtected, "label", kHeaderAlg, "alg"};
constexpr Field kContentTypeField{kProtected, "label", kHeaderContentType, "content type"};
constexpr Field kKidField{kProtected, "label", kHeaderKid, "kid"};
constexpr Field kClaimsField{kProtected, "label", kHeaderCwtClaims, "CWT claims"};
constexpr Field kTypField{kProtected, "label", kHeaderTyp, "typ"};
constexpr Field kSequenceField{kProtected, "label", kHeaderSequence, "sequence"};
constexpr Field kIssField{kClaims, "claim", kClaimIss, "iss"};
constexpr Field kSubField{kClaims, "claim", kClaimSub, "sub"};
constexpr Field kIatField{kClaims, "claim", kClaimIat, "iat"};

Status parse_alg(const cbor::Value& map, StatementHeader& header) {
  CUSTOS_ASSIGN_OR_RETURN(header.cose_alg, internal::require_int(map, kAlgField));
  auto alg = crypto::algorithm_from_cose(header.cose_alg);
  if (!alg.ok()) {
    return internal::field_error(kAlgField,
                                 std::to_string(header.cose_alg) +
                                     " is not supported (use -7 ES256, -19 Ed25519 or -8 EdDSA)");
  }
  header.alg = *alg;
  return Status();
}

Status parse_claims(const cbor::Value& map, StatementHeader& header) {
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Value* claims, internal::require_map(map, kClaimsField));
  CUSTOS_RETURN_IF_ERROR(internal::only_keys(
      *claims, kClaims, "claim", {kClaimIss, kClaimSub, kClaimIat}, "1 iss, 2 sub, 6 iat"));
  CUSTOS_ASSIGN_OR_RETURN(header.issuer,
                          internal::require_text(*claims, kIssField, limits::kTextFieldBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(header.subject,
                          internal::require_text(*claims, kSubField, limits::kTextFieldBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(header.issued_at_s, internal::require_uint(*claims, kIatField));
  return Status();
}

Result<StatementHeader> parse_header(const cbor::Value& map) {
  CUSTOS_RETURN_IF_ERROR(internal::only_keys(
      map, kProtected, "label",
      {kHeaderAlg, kHeaderContentType, kHeaderKid, kHeaderCwtClaims, kHeaderTyp, kHeaderSequence},
      "1 alg, 3 content type, 4 kid, 15 CWT claims, 16 typ, -65537 sequence"));
  StatementHeader header;
  CUSTOS_RETURN_IF_ERROR(parse_alg(map, header));
  CUSTOS_ASSIGN_OR_RETURN(header.content_type, internal::require_text(map, kContentTypeField,
                                                                      limits::kTextFieldBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(header.kid, internal::require_hash(map, kKidField));
  CUSTOS_RETURN_IF_ERROR(parse_claims(map, header));
  CUSTOS_ASSIGN_OR_RETURN(header.sequence, internal::require_uint(map, kSequenceField));
  if (header.sequence == 0) return internal::field_error(kSequenceField, "must be at least 1");
  if (map.find(kHeaderTyp) != nullptr) {
    // Optional, but typed and bounded like every other text field.
    CUSTOS_RETURN_IF_ERROR(
        internal::require_text(map, kTypField, limits::kTextFieldBytesMax).status());
  }
  return header;
}

std::string kid_hex(const Hash256& kid) {
  return to_hex(ByteView(kid.data(), kid.size()));
}

}  // namespace

ByteView Statement::payload() const {
  return sign1.payload ? ByteView(*sign1.payload) : ByteView();
}

Result<Statement> parse_statement(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Sign1 sign1, parse_sign1(bytes, limits::kStatementBytesMax));
  if (sign1.protected_bytes.empty()) {
    return error(ErrorCode::kMalformed,
                 "protected header is empty; a statement needs alg, content type, kid, CWT "
                 "claims and sequence");
  }
  CUSTOS_ASSIGN_OR_RETURN(StatementHeader header, parse_header(sign1.protected_map));
  if (!sign1.payload) {
    return error(ErrorCode::kMalformed,
                 "payload is detached (nil); custos statements carry their payload as a bstr");
  }
  if (sign1.signature.size() != crypto::kSignatureBytes) {
    return error(ErrorCode::kMalformed,
                 "signature must be 64 bytes, got " + std::to_string(sign1.signature.size()));
  }
  Statement statement;
  statement.bytes.assign(bytes.begin(), bytes.end());
  statement.sign1 = std::move(sign1);
  statement.header = std::move(header);
  return statement;
}

Status verify_statement(const Statement& statement, const crypto::PublicKey& key) {
  const StatementHeader& header = statement.header;
  if (key.kid() != header.kid) {
    return error(ErrorCode::kBadSignature, "statement kid " + kid_hex(header.kid) +
                                               " does not match the key's kid " +
                                               kid_hex(key.kid()));
  }
  if (key.algorithm() != header.alg) {
    return error(ErrorCode::kBadSignature, std::string("statement alg is ") +
                                               crypto::algorithm_name(header.alg) + " but key " +
                                               kid_hex(key.kid()) + " is " +
                                               crypto::algorithm_name(key.algorithm()));
  }
  Bytes to_be_signed = sig_structure(statement.sign1.protected_bytes, {}, statement.payload());
  Status s = key.verify(to_be_signed, statement.sign1.signature);
  if (!s.ok()) {
    return error(ErrorCode::kBadSignature, "statement signature does not verify under kid " +
                                               kid_hex(key.kid()) + ": " + s.message());
  }
  return Status();
}

Bytes sign_statement(const crypto::PrivateKey& key, StatementHeader header, ByteView payload) {
  header.alg = key.algorithm();
  header.kid = key.public_key().kid();
  // Keep the caller's choice between the two Ed25519 identifiers; anything
  // else is replaced by the key's own algorithm.
  bool keep =
      header.alg == crypto::Algorithm::kEd25519 &&
      (header.cose_alg == crypto::kCoseAlgEdDSA || header.cose_alg == crypto::kCoseAlgEd25519);
  if (!keep) header.cose_alg = crypto::cose_algorithm(header.alg);

  cbor::Map claims;
  claims.emplace_back(cbor::integer(kClaimIss), cbor::text(header.issuer));
  claims.emplace_back(cbor::integer(kClaimSub), cbor::text(header.subject));
  claims.emplace_back(cbor::integer(kClaimIat), cbor::Value::uint(header.issued_at_s));
  cbor::Map map;
  map.emplace_back(cbor::integer(kHeaderAlg), cbor::integer(header.cose_alg));
  map.emplace_back(cbor::integer(kHeaderContentType), cbor::text(header.content_type));
  map.emplace_back(cbor::integer(kHeaderKid), cbor::Value::bytes(ByteView(header.kid)));
  map.emplace_back(cbor::integer(kHeaderCwtClaims), cbor::Value::map(std::move(claims)));
  map.emplace_back(cbor::integer(kHeaderSequence), cbor::Value::uint(header.sequence));

  Sign1 sign1;
  sign1.protected_bytes = cbor::encode(cbor::Value::map(std::move(map)));
  sign1.unprotected = cbor::Value::map({});
  sign1.payload = Bytes(payload.begin(), payload.end());
  sign1.signature = key.sign(sig_structure(sign1.protected_bytes, {}, payload));
  return encode_sign1(sign1);
}

}  // namespace custos::cose
