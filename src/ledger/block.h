// Blocks group consecutive log entries. Headers are deterministic CBOR maps
// and form a hash chain: header_hash = SHA-256(encoded header), and each
// header names its predecessor's hash. Block 0 holds no entries and anchors
// the chain to the genesis file.
#pragma once

#include <optional>

#include "core/bytes.h"
#include "cose/receipt.h"
#include "crypto/keys.h"

namespace custos::ledger {

struct BlockHeader {
  uint64_t height = 0;
  Hash256 prev_hash{};    // zeros for block 0
  uint64_t log_size = 0;  // entries in the log after this block
  Hash256 root{};         // RFC 9162 root at log_size
  uint64_t time_ms = 0;   // registration time of every entry in the block
  Hash256 proposer{};     // kid of the node that made the block
  uint64_t entry_count = 0;
  std::optional<Hash256> genesis_hash;  // block 0 only

  Bytes encode() const;
  static Result<BlockHeader> decode(ByteView bytes);
};

// What is stored per block: the header bytes and the storing node's two
// signatures, one as a checkpoint (COSE_Sign1 over the header) and one over
// the root for receipts (see cose/receipt.h: every receipt in the block reuses
// it). In a consortium every node holds the same headers but signs its own
// record, so the signer is not necessarily the block's proposer.
struct BlockRecord {
  Bytes header_bytes;
  BlockHeader header;
  Hash256 signer{};  // kid of the node whose signatures these are
  Bytes checkpoint_signature;
  Bytes receipt_protected;
  Bytes root_signature;

  Hash256 header_hash() const;
  Bytes encode() const;
  static Result<BlockRecord> decode(ByteView bytes);
};

inline constexpr const char* kCheckpointContentType = "application/vnd.custos.checkpoint+cbor";

// Protected header of a checkpoint: {1: alg, 3: content type, 4: node kid}.
Bytes checkpoint_protected_bytes(crypto::Algorithm alg, const Hash256& node_kid);
// The tagged COSE_Sign1 checkpoint of a block.
Bytes checkpoint_bytes(const BlockRecord& block, crypto::Algorithm alg);
// Verifies a checkpoint COSE_Sign1 against a node key; returns its header.
Result<BlockHeader> verify_checkpoint(ByteView checkpoint, const crypto::PublicKey& node_key);

// Signs a new block: fills header_bytes and both signatures.
BlockRecord seal_block(const BlockHeader& header, const crypto::PrivateKey& node_key,
                       const std::string& issuer);

// Checks both signatures of a stored block against the node key (which must
// be the record's signer).
Status verify_block_signatures(const BlockRecord& block, const crypto::PublicKey& node_key);

}  // namespace custos::ledger
