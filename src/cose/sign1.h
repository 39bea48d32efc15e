// COSE_Sign1 (RFC 9052 section 4.2) parsing and building, and the custos
// header labels. docs/formats.md documents every label with byte examples.
#pragma once

#include <optional>

#include "codec/cbor.h"
#include "core/bytes.h"
#include "core/status.h"

namespace custos::cose {

// RFC 9052 / IANA COSE header parameters.
inline constexpr int64_t kHeaderAlg = 1;
inline constexpr int64_t kHeaderContentType = 3;
inline constexpr int64_t kHeaderKid = 4;
inline constexpr int64_t kHeaderCwtClaims = 15;  // RFC 9597
inline constexpr int64_t kHeaderVds = 395;       // RFC 9942 verifiable data structure
inline constexpr int64_t kHeaderVdp = 396;       // RFC 9942 verifiable data structure proofs
// Private-use label (RFC 9052: less than -65536): per-key sequence number.
inline constexpr int64_t kHeaderSequence = -65537;
// Private-use label in receipts: the tree size the signed root belongs to.
// RFC 9942 signs only the root, leaving tree_size in the unsigned proof,
// where another size of the same path shape would also verify.
inline constexpr int64_t kHeaderTreeSize = -65538;

// CWT claims (RFC 8392) used inside label 15.
inline constexpr int64_t kClaimIss = 1;
inline constexpr int64_t kClaimSub = 2;
inline constexpr int64_t kClaimIat = 6;

inline constexpr uint64_t kTagSign1 = 18;

struct Sign1 {
  Bytes protected_bytes;         // exactly as received/signed (bstr content)
  cbor::Value protected_map;     // decoded protected_bytes (empty map if empty)
  cbor::Value unprotected;       // map
  std::optional<Bytes> payload;  // nullopt = detached (nil)
  Bytes signature;
};

// Parses a tagged (18) or untagged COSE_Sign1. Checks structure only (no
// signature). The protected header must be deterministic CBOR; the outer
// structure only well-formed. Limits from core/limits.h apply.
Result<Sign1> parse_sign1(ByteView input, size_t max_bytes = limits::kStatementBytesMax);

// Sig_structure = ["Signature1", body_protected, external_aad, payload].
Bytes sig_structure(ByteView protected_bytes, ByteView external_aad, ByteView payload);

// Tagged COSE_Sign1 encoding.
Bytes encode_sign1(const Sign1& sign1);

}  // namespace custos::cose
