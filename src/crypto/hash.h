// SHA-256 (OpenSSL).
#pragma once

#include <cstddef>

#include "core/bytes.h"

namespace custos::crypto {

Hash256 sha256(ByteView data);

// Incremental hashing, for hashing prefix || data without a copy. Cheap to
// construct (no allocation): it may live on the stack of a hot loop.
class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(ByteView data);
  // The hash of everything updated since construction or the last finish();
  // the object is ready for a new hash afterwards.
  Hash256 finish();

 private:
  // OpenSSL's SHA256_CTX (112 bytes), kept opaque so OpenSSL headers stay out
  // of ours; hash.cc checks the size.
  static constexpr size_t kStateBytes = 128;
  alignas(8) unsigned char state_[kStateBytes];
};

}  // namespace custos::crypto
