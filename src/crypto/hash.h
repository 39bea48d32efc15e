// SHA-256 (OpenSSL).
#pragma once

#include "core/bytes.h"

namespace custos::crypto {

Hash256 sha256(ByteView data);

// Incremental hashing, for hashing prefix || data without a copy.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(ByteView data);
  Hash256 finish();

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so OpenSSL headers stay out of ours
};

}  // namespace custos::crypto
