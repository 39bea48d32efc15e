// RFC 9942 COSE receipts over the RFC 9162 log (vds = 1, RFC9162_SHA256).
//
// Protected header: {1: alg, 4: node kid, 15: {1: iss, 6: iat}, 395: 1,
//                    -65538: tree_size} (the last is custos's, see sign1.h).
// Unprotected header: {396: {-1: [bstr .cbor [tree_size, leaf_index, [+ hash]]]}}.
// Payload: nil (detached); the verifier recomputes it: the tree root.
// Because the signature covers only the protected header and the root, the
// node signs each block's root once and every receipt of that block reuses
// that signature with its own inclusion proof.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "crypto/keys.h"

namespace custos::cose {

inline constexpr int64_t kVdsRfc9162Sha256 = 1;
inline constexpr int64_t kVdpInclusion = -1;
inline constexpr int64_t kVdpConsistency = -2;

struct InclusionProof {
  uint64_t tree_size = 0;
  uint64_t leaf_index = 0;
  std::vector<Hash256> path;
};

struct ConsistencyProof {
  uint64_t size1 = 0;
  uint64_t size2 = 0;
  std::vector<Hash256> path;
};

struct ReceiptHeader {
  crypto::Algorithm alg = crypto::Algorithm::kEd25519;
  Hash256 kid{};             // node key id
  std::string issuer;        // node / consortium name
  uint64_t issued_at_s = 0;  // block time
  // Signed tree size; always written by custos, optional when parsing so
  // other RFC 9942 receipts still parse. Must equal the proof's tree_size.
  std::optional<uint64_t> tree_size;
};

// Deterministic protected header bytes for a receipt.
Bytes receipt_protected_bytes(const ReceiptHeader& header);
// The node's signature over (protected, root): done once per block.
Bytes sign_root(const crypto::PrivateKey& key, ByteView protected_bytes, const Hash256& root);
// Assembles a receipt from the per-block parts and one inclusion proof.
Bytes encode_receipt(ByteView protected_bytes, const InclusionProof& proof, ByteView signature);

// bstr .cbor [size1, size2, [+ hash]] as RFC 9942 writes consistency proofs.
Bytes encode_consistency_proof(const ConsistencyProof& proof);
Result<ConsistencyProof> decode_consistency_proof(ByteView bytes);

struct Receipt {
  Bytes protected_bytes;
  ReceiptHeader header;
  InclusionProof proof;
  Bytes signature;
};

Result<Receipt> parse_receipt(ByteView bytes);

// Offline verification: recomputes the root from SHA-256(0x00 || statement)
// and the inclusion proof, then checks the node signature over it. Errors name
// the precise reason (wrong key id, proof shape, signature).
Status verify_receipt(const Receipt& receipt, ByteView statement_bytes,
                      const crypto::PublicKey& node_key);

}  // namespace custos::cose
