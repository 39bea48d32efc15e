#include "crypto/hash.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstdlib>

namespace custos::crypto {

namespace {

EVP_MD_CTX* as_ctx(void* p) {
  return static_cast<EVP_MD_CTX*>(p);
}

// OpenSSL only fails here on allocation failure or a broken build; there is
// no input that makes SHA-256 fail, so there is nothing to report upward.
void check(int ok) {
  if (ok != 1) std::abort();
}

}  // namespace

Hash256 sha256(ByteView data) {
  Hash256 out;
  // The low-level one-shot avoids the EVP context allocation and the
  // provider lookup on every call; it is on the hot path of leaf hashing.
  SHA256(data.data(), data.size(), out.data());
  return out;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) std::abort();
  check(EVP_DigestInit_ex(as_ctx(ctx_), EVP_sha256(), nullptr));
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(as_ctx(ctx_));
}

void Sha256::update(ByteView data) {
  check(EVP_DigestUpdate(as_ctx(ctx_), data.data(), data.size()));
}

Hash256 Sha256::finish() {
  Hash256 out;
  unsigned int len = 0;
  check(EVP_DigestFinal_ex(as_ctx(ctx_), out.data(), &len));
  // Re-arm so a caller who keeps the object gets a fresh hash, not UB.
  check(EVP_DigestInit_ex(as_ctx(ctx_), EVP_sha256(), nullptr));
  return out;
}

}  // namespace custos::crypto
