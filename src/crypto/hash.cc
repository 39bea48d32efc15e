// OpenSSL 3 routes the one-shot SHA256() and EVP_Digest*() through a provider
// lookup (EVP_MD_fetch, with locks) on every call, which cost more than
// hashing a 300-byte statement with SHA-NI (~0.4 us of ~0.6 us per hash in
// the micro-benchmark). The low-level SHA256_* functions go straight to the
// same assembly block function. They are marked deprecated in 3.0 but remain
// part of its API; the suppression is confined to this file.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "crypto/hash.h"

#include <openssl/sha.h>

#include <cstdlib>
#include <new>

namespace custos::crypto {

namespace {

// OpenSSL only fails here on a broken build; there is no input that makes
// SHA-256 fail, so there is nothing to report upward.
void check(int ok) {
  if (ok != 1) std::abort();
}

}  // namespace

Hash256 sha256(ByteView data) {
  Hash256 out;
  SHA256_CTX ctx;
  check(SHA256_Init(&ctx));
  check(SHA256_Update(&ctx, data.data(), data.size()));
  check(SHA256_Final(out.data(), &ctx));
  return out;
}

Sha256::Sha256() {
  static_assert(sizeof(SHA256_CTX) <= kStateBytes, "kStateBytes is too small for SHA256_CTX");
  static_assert(alignof(SHA256_CTX) <= 8);
  check(SHA256_Init(new (state_) SHA256_CTX));
}

void Sha256::update(ByteView data) {
  check(
      SHA256_Update(std::launder(reinterpret_cast<SHA256_CTX*>(state_)), data.data(), data.size()));
}

Hash256 Sha256::finish() {
  auto* ctx = std::launder(reinterpret_cast<SHA256_CTX*>(state_));
  Hash256 out;
  check(SHA256_Final(out.data(), ctx));
  // Re-arm so a caller who keeps the object gets a fresh hash.
  check(SHA256_Init(ctx));
  return out;
}

}  // namespace custos::crypto
