// A custos signed statement: a COSE_Sign1 whose protected header carries
// alg, kid, content type, CWT claims (iss, sub, iat) and a per-key sequence
// number, over a payload (deterministic CBOR for every known content type).
#pragma once

#include <string>

#include "cose/sign1.h"
#include "crypto/keys.h"

namespace custos::cose {

struct StatementHeader {
  crypto::Algorithm alg = crypto::Algorithm::kEd25519;
  int64_t cose_alg = crypto::kCoseAlgEd25519;  // as written (-8 or -19 for Ed25519)
  Hash256 kid{};
  std::string content_type;
  std::string issuer;        // CWT iss
  std::string subject;       // CWT sub
  uint64_t issued_at_s = 0;  // CWT iat, seconds since the Unix epoch
  uint64_t sequence = 0;     // per-key, starts at 1
};

struct Statement {
  Bytes bytes;  // the exact bytes registered (the Merkle leaf)
  Sign1 sign1;
  StatementHeader header;

  ByteView payload() const;  // empty view when detached
};

// Parses and validates the structure and header of a statement: every header
// named above present with the right type, text fields within
// limits::kTextFieldBytesMax, kid 32 bytes, alg supported, sequence >= 1,
// payload attached. Does not check the signature.
Result<Statement> parse_statement(ByteView bytes);

// Ok or kBadSignature; also checks that key.kid() == header.kid and the
// algorithms match.
Status verify_statement(const Statement& statement, const crypto::PublicKey& key);

// Builds and signs a statement. header.alg and header.kid are taken from the
// key; the protected header is deterministic CBOR.
Bytes sign_statement(const crypto::PrivateKey& key, StatementHeader header, ByteView payload);

}  // namespace custos::cose
