// Signing keys: ES256 (ECDSA P-256 with SHA-256, via OpenSSL) and Ed25519
// (verification via libsodium, which is ~2x faster than OpenSSL here).
//
// Keys are stored as PEM, PKCS#8 for private keys and SubjectPublicKeyInfo for
// public keys, so they are interchangeable with the `openssl` command line.
// A key id (kid) is SHA-256 of the SPKI DER encoding of the public key.
// Signatures use the COSE form: raw r||s (64 bytes) for ES256, 64 bytes for
// Ed25519. Objects are immutable after construction and safe to share between
// threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/status.h"

namespace custos::crypto {

enum class Algorithm { kES256, kEd25519 };

// COSE algorithm identifiers: ES256 = -7, Ed25519 = -19 (RFC 9864); the older
// polymorphic EdDSA = -8 yields identical signatures and is accepted.
inline constexpr int64_t kCoseAlgES256 = -7;
inline constexpr int64_t kCoseAlgEdDSA = -8;
inline constexpr int64_t kCoseAlgEd25519 = -19;

int64_t cose_algorithm(Algorithm alg);
Result<Algorithm> algorithm_from_cose(int64_t cose_alg);
const char* algorithm_name(Algorithm alg);                     // "ES256" / "Ed25519"
Result<Algorithm> algorithm_from_name(std::string_view name);  // case-insensitive

inline constexpr size_t kSignatureBytes = 64;  // both algorithms

class PublicKey {
 public:
  static Result<PublicKey> from_spki_der(ByteView der);
  static Result<PublicKey> from_pem(std::string_view pem);

  Algorithm algorithm() const;
  const Bytes& spki_der() const;
  const Hash256& kid() const;
  std::string to_pem() const;

  // Ok, or kBadSignature (also for a signature of the wrong length).
  Status verify(ByteView message, ByteView signature) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

class PrivateKey {
 public:
  static Result<PrivateKey> generate(Algorithm alg);
  static Result<PrivateKey> from_pem(std::string_view pem);

  Algorithm algorithm() const;
  const PublicKey& public_key() const;
  std::string to_pem() const;  // PKCS#8, unencrypted

  // COSE-form signature over `message` (ES256 hashes it with SHA-256 first).
  Bytes sign(ByteView message) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace custos::crypto
