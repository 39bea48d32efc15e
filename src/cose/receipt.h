// RFC 9942 COSE receipts over the RFC 9162 log (vds = 1, RFC9162_SHA256).
//
// Protected header: {1: alg, 4: node kid, 15: {1: iss, 6: iat}, 395: 1,
//                    -65538: tree_size} (the last is custos's, see sign1.h).
// Unprotected header: {396: {-1: [bstr .cbor [tree_size, leaf_index, [+ hash]]]}}.
// Payload: nil (detached); the verifier recomputes it: the tree root.
// Because the signature covers only the protected header and the root, the
// node signs each block's root once and every receipt of that block reuses
// that signature with its own inclusion proof.
//
// Consortium receipts: a receipt bundle is the CBOR array [+ COSE_Sign1] of
// such receipts, one per signing node, all for one tree size. Each element
// stays an ordinary RFC 9942 receipt, so any RFC 9942 verifier can check any
// element; custos verifiers accept a bundle only when a quorum of distinct
// consortium nodes signed the same root (verify_receipt_bundle). Parsers
// never assert on input: every malformed, oversized or hostile bundle is a
// Status naming the element and the rule.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
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

// ---------------------------------------------------------------------------
// Receipt bundles (consortium receipts)

// One element per consortium node at most; genesis allows 256 nodes
// (ledger::kGenesisKeysMax), so a larger bundle cannot be honest.
inline constexpr size_t kReceiptBundleEntriesMax = 256;
// Whole encoded bundle. 256 receipts of ~2.5 KiB (a 64-hash path) fit; the
// bound keeps hostile files and HTTP bodies from costing more than this.
inline constexpr size_t kReceiptBundleBytesMax = 1024 * 1024;

// Encodes receipts (each a tagged COSE_Sign1 as produced by encode_receipt)
// as a bundle: a definite-length CBOR array head followed by the receipts'
// bytes unchanged. The caller orders them by the node's position in the
// genesis. 1 <= receipts.size() <= kReceiptBundleEntriesMax (asserted: the
// node builds bundles from its own signatures, never from outside bytes).
Bytes encode_receipt_bundle(const std::vector<Bytes>& receipts);

// Parses a bundle; also accepts a single COSE_Sign1 receipt (tagged, or
// untagged: an array of 4 whose first item is a bstr) as a bundle of one, so
// receipts made before bundles still verify. Bundle elements must be tagged
// (18) receipts of at most limits::kReceiptBytesMax bytes. Refuses: more than
// kReceiptBundleBytesMax bytes or kReceiptBundleEntriesMax elements
// (kTooLarge), an empty array, a non-shortest or indefinite array head,
// trailing bytes, any element that parse_receipt refuses (kMalformed or
// kTooLarge, the message naming the element index).
Result<std::vector<Receipt>> parse_receipt_bundle(ByteView bytes);

// What a bundle proves for one statement, element by element.
struct ReceiptQuorum {
  struct Signer {
    size_t node = 0;     // position in node_keys (genesis order)
    size_t element = 0;  // position in the bundle
  };
  struct Rejection {
    size_t element = 0;
    std::optional<size_t> node;  // absent when the kid names no node key
    std::string reason;          // "unknown kid ...", "duplicate of element 0", ...
  };
  size_t quorum = 0;
  size_t node_count = 0;
  // The tree the counted signatures agree on (the agreeing group with the
  // most distinct nodes; zero when no element verified).
  uint64_t tree_size = 0;
  uint64_t leaf_index = 0;
  Hash256 root{};
  std::vector<Signer> signers;  // distinct nodes, in bundle order
  std::vector<Rejection> rejected;

  bool has_quorum() const { return signers.size() >= quorum; }
};

// Checks every element against the consortium's node keys (genesis order):
// an element counts when its kid names a node key, its proof recomputes a
// root from SHA-256(0x00 || statement) and its signature (and signed tree
// size) verify; each node counts once; only elements for the same
// (tree_size, root) count together. Element order is not significant.
// kInvalidArgument when quorum is 0 or above node_keys.size(); kMalformed
// for an empty list, kTooLarge above kReceiptBundleEntriesMax. Otherwise
// the result, quorum reached or not (see has_quorum()).
Result<ReceiptQuorum> check_receipt_bundle(const std::vector<Receipt>& receipts,
                                           ByteView statement_bytes,
                                           const std::vector<crypto::PublicKey>& node_keys,
                                           size_t quorum);

// Ok when the check reached its quorum; otherwise kBadSignature saying how
// many valid distinct node signatures were found, how many are needed
// ("2 of 3 required"), and why each other element was rejected. Nodes are
// named node_names[i] when given (same order as node_keys), else "node #i".
Status receipt_quorum_status(const ReceiptQuorum& check,
                             const std::vector<std::string>& node_names = {});

// Offline check against the consortium's node keys (genesis order):
// check_receipt_bundle, then receipt_quorum_status. OK iff at least `quorum`
// distinct nodes signed the same root.
Status verify_receipt_bundle(const std::vector<Receipt>& receipts, ByteView statement_bytes,
                             const std::vector<crypto::PublicKey>& node_keys, size_t quorum);

}  // namespace custos::cose
