// Consensus data types and their wire format (Jolteon / 2-chain HotStuff).
//
// Contract:
// - Every type here is a plain value; nothing in this header is verified on
//   construction. Verification of signatures and certificates lives in
//   consensus/certs.h and is done by the Replica before it acts on anything.
// - encode_message()/decode_message() are the only wire format. Encoding is
//   deterministic CBOR (positional arrays, field order documented in
//   docs/consensus.md); decoding is strict: exact array lengths, exact types,
//   32-byte hashes, 64-byte signatures, every count bounded by the named
//   limits below. Errors are kMalformed or kTooLarge, never an assert.
// - Block::id() is SHA-256 over a domain-separated CBOR encoding of every
//   field except the signature; the payload enters as the digest of its item
//   ids, so the id is cheap to recompute and binds every item.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include "core/bytes.h"
#include "core/limits.h"
#include "core/status.h"
#include "crypto/keys.h"

namespace custos::consensus {

using NodeIndex = uint32_t;

// --- Limits (checked when decoding; the Replica also enforces them) ---

// Validators in one consortium; bounds the signatures in a QC or TC.
inline constexpr size_t kValidatorsMax = 256;
// Items (signed statements) in one block; same as the ledger's block limit.
inline constexpr size_t kBlockItemsMax = limits::kBlockEntriesMax;
// Sum of the item sizes in one block.
inline constexpr size_t kBlockBytesMax = limits::kBlockBytesMax;
// Blocks in one BlockResponse and the largest BlockRequest::count.
inline constexpr size_t kBlocksPerResponseMax = 64;
// A responder stops adding blocks once the response would pass this many
// payload bytes (it always sends at least the requested block).
inline constexpr size_t kResponsePayloadBytesMax = 32 * 1024 * 1024;
// One encoded message: a full response plus per-item and certificate overhead.
inline constexpr size_t kMessageBytesMax = 40 * 1024 * 1024;
// A block's time_ms may be at most this far ahead of the voter's clock.
inline constexpr uint64_t kClockSkewMaxMs = 10'000;

// Certifies that a quorum voted for block_id in round. Signatures are sorted
// by strictly ascending index; empty only for the genesis QC (round 0,
// block_id = genesis id), which needs no signatures.
struct QuorumCert {
  Hash256 block_id{};
  uint64_t round = 0;
  std::vector<std::pair<NodeIndex, Bytes>> signatures;
  bool operator==(const QuorumCert&) const = default;
};

// One node's signed timeout for a round, binding its highest QC round.
struct TimeoutSignature {
  NodeIndex node = 0;
  uint64_t high_qc_round = 0;
  Bytes signature;
  bool operator==(const TimeoutSignature&) const = default;
};

// A quorum of timeouts for round; sorted by strictly ascending node.
// high_qc is the QC with the highest round among the timeouts (its round
// equals max_high_qc_round()), so whoever holds the TC can extend it.
struct TimeoutCert {
  uint64_t round = 0;
  std::vector<TimeoutSignature> signatures;
  QuorumCert high_qc;
  bool operator==(const TimeoutCert&) const = default;
  // The highest high_qc_round among the signatures (0 when empty).
  uint64_t max_high_qc_round() const;
};

struct Block {
  uint64_t round = 0;
  Hash256 parent_id{};
  QuorumCert qc;                  // certifies the parent
  std::optional<TimeoutCert> tc;  // present when round-1 timed out
  NodeIndex author = 0;
  uint64_t time_ms = 0;  // author's clock; >= parent's time_ms, <= voter's clock + kClockSkewMaxMs
  std::vector<Bytes> payload;  // opaque items (signed statements); item id = SHA-256(item)
  Bytes signature;             // author's signature over block_signing_bytes(id())
  bool operator==(const Block&) const = default;

  // SHA-256 over CBOR ["custos-block-v1", round, parent_id, qc, tc / null,
  // author, time_ms, payload_digest]; payload_digest = SHA-256 of the
  // concatenated item ids.
  Hash256 id() const;
  // Sum of the item sizes.
  size_t payload_bytes() const;
};

// Round 0, parent_id = the ledger's genesis hash, genesis-style QC with a
// zero block id, author 0, time 0, no payload, no signature. Deterministic.
Block genesis_block(const Hash256& ledger_genesis_hash);
// The QC that certifies the genesis block: round 0, no signatures.
QuorumCert genesis_qc(const Hash256& genesis_id);

Bytes encode_block(const Block& block);
Result<Block> decode_block(ByteView bytes);

struct Proposal {
  Block block;
  bool operator==(const Proposal&) const = default;
};
struct Vote {
  Hash256 block_id{};
  uint64_t round = 0;
  NodeIndex voter = 0;
  Bytes signature;  // over vote_signing_bytes(block_id, round)
  bool operator==(const Vote&) const = default;
};
struct Timeout {
  uint64_t round = 0;
  QuorumCert high_qc;
  std::optional<TimeoutCert> last_tc;  // TC for round-1 when the sender entered round by it
  NodeIndex voter = 0;
  Bytes signature;  // over timeout_signing_bytes(round, high_qc.round)
  bool operator==(const Timeout&) const = default;
};
// That block and up to count-1 ancestors; 1 <= count <= kBlocksPerResponseMax.
struct BlockRequest {
  Hash256 block_id{};
  uint32_t count = 1;
  bool operator==(const BlockRequest&) const = default;
};
// Requested block first, then its parent, ...; empty when unknown.
struct BlockResponse {
  std::vector<Block> blocks;
  bool operator==(const BlockResponse&) const = default;
};
using Message = std::variant<Proposal, Vote, Timeout, BlockRequest, BlockResponse>;

// Deterministic CBOR [kind, fields...]; see docs/consensus.md.
Bytes encode_message(const Message& message);
// Strict; kMalformed / kTooLarge with a message naming the field.
Result<Message> decode_message(ByteView bytes);
// "proposal", "vote", "timeout", "block-request", "block-response".
const char* message_name(const Message& message);

// --- Signed bytes (domain-separated; exported for tests and simulations) ---

// "custos-vote-v1" || block_id || be64(round)
Bytes vote_signing_bytes(const Hash256& block_id, uint64_t round);
// "custos-timeout-v1" || be64(round) || be64(high_qc_round)
Bytes timeout_signing_bytes(uint64_t round, uint64_t high_qc_round);
// "custos-proposal-v1" || block_id
Bytes block_signing_bytes(const Hash256& block_id);

// Convenience signers (the Replica uses them; so can tests and simulations).
void sign_block(Block& block, const crypto::PrivateKey& key);
Vote make_vote(const Hash256& block_id, uint64_t round, NodeIndex voter,
               const crypto::PrivateKey& key);
Timeout make_timeout(uint64_t round, QuorumCert high_qc, std::optional<TimeoutCert> last_tc,
                     NodeIndex voter, const crypto::PrivateKey& key);

}  // namespace custos::consensus
