// The consensus replica: a deterministic state machine running Jolteon
// (2-chain HotStuff with a timeout-certificate pacemaker), see
// docs/consensus.md.
//
// Contract:
// - Events in (start, on_message, on_timer, on_payload_available), actions out
//   (Output). No clocks, threads, sockets or randomness inside: time comes in
//   as now_ms, so the same inputs always give the same outputs.
// - The caller must apply each Output in this order: persist `safety` and
//   `blocks` (synced), then send `messages`, then execute `committed` in
//   order, then arm a timer for `timer_ms`. A vote or timeout that leaves the
//   node before its SafetyState is on disk can make it equivocate after a
//   crash.
// - Messages are authenticated by their signatures, never by `from` alone
//   (which only says whom to ask for missing blocks). Anything that fails a
//   check is dropped; bytes from peers never trigger an assert.
// - Not thread-safe: one caller at a time. `store` and `payload` must outlive
//   the replica.
// - Memory is bounded by the named limits below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "consensus/safety_rules.h"
#include "consensus/types.h"
#include "crypto/keys.h"

namespace custos::consensus {

// Uncommitted blocks held in memory (the tree above the committed block).
inline constexpr size_t kPendingBlocksMax = 1024;
// Messages parked until the blocks they refer to arrive.
inline constexpr size_t kBufferedMessagesMax = 64;
// Fetched blocks waiting to link to the tree while catching up. A node more
// than this many blocks behind cannot catch up by block requests alone.
inline constexpr size_t kSyncBlocksMax = 65536;
// Payload bytes of those fetched blocks.
inline constexpr size_t kSyncBytesMax = 1024ull * 1024 * 1024;
// Rounds ahead of the current one for which votes and timeouts are kept.
inline constexpr uint64_t kFutureRoundsMax = 64;

struct Config {
  Hash256 genesis_id{};                       // genesis_block(...).id()
  std::vector<crypto::PublicKey> validators;  // Ed25519 node keys, genesis order; index = NodeIndex
  NodeIndex self = 0;
  crypto::PrivateKey key;                 // validators[self]'s private key
  uint64_t round_timeout_ms = 1000;       // first timeout of a round
  uint64_t round_timeout_max_ms = 10000;  // backoff cap
  // A leader with no payload and nothing uncommitted waits up to this, then
  // proposes an empty block anyway (heartbeat).
  uint64_t idle_proposal_ms = 500;
  size_t block_items_max = 4096;
  size_t block_bytes_max = 16 << 20;
};

// Checks a Config before a Replica is built from it (the constructor asserts
// what this checks): 1..kValidatorsMax Ed25519 validators, self in range, key
// matches validators[self], timeouts > 0, limits within the wire limits.
Status validate_config(const Config& config);

struct Recovered {             // what the node reads back from disk at start
  SafetyState safety;          // default-constructed + genesis QC on first start
  Block committed;             // newest committed block (genesis_block at first start)
  std::vector<Block> pending;  // persisted blocks that may be above it (any order)
};
// What a node passes at its very first start.
Recovered initial_recovered(const Block& genesis);

// Reads any block this node persisted (committed or not); used to answer
// BlockRequest and to find ancestors.
class BlockReader {
 public:
  virtual ~BlockReader() = default;
  virtual std::optional<Block> get(const Hash256& id) const = 0;
};

// Takes up to max_items / max_bytes items from the node's mempool, skipping
// items for which in_flight(item_id) is true (items already in uncommitted
// ancestors of the block being built).
using PayloadSource = std::function<std::vector<Bytes>(
    size_t max_items, size_t max_bytes, const std::function<bool(const Hash256&)>& in_flight)>;

struct Envelope {
  std::optional<NodeIndex> to;  // nullopt: every other validator
  Message message;
};

struct Output {
  std::optional<SafetyState> safety;  // persist (synced) BEFORE sending messages
  // Persist (synced) BEFORE sending messages: own proposals and every block
  // voted for.
  std::vector<Block> blocks;
  std::vector<Envelope> messages;
  std::vector<Block> committed;        // newly committed, oldest first; execute in order
  std::vector<Hash256> committed_ids;  // their ids, aligned with `committed`
  std::optional<uint64_t> timer_ms;    // absolute time at which on_timer should next be called
};

class Replica {
 public:
  // config must pass validate_config (asserted).
  Replica(Config config, Recovered recovered, const BlockReader& store, PayloadSource payload);
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  Output start(uint64_t now_ms);
  // `from` is authenticated by the transport; out-of-range `from` is dropped.
  Output on_message(NodeIndex from, Message message, uint64_t now_ms);
  Output on_timer(uint64_t now_ms);
  // Mempool became non-empty; a waiting leader may propose now.
  Output on_payload_available(uint64_t now_ms);
  // Which validators this node cannot reach now (by NodeIndex; missing
  // entries count as reachable), as its transport sees it. A round whose
  // leader is unreachable, or whose next leader is (it collects the votes),
  // is timed out at once instead of after the round timeout: with a crashed
  // node, two rounds in n otherwise cost a whole timeout each. A leader
  // proposes before it times out such a round. Only liveness depends on it:
  // a wrong view costs at most this node's vote in those rounds.
  Output on_unreachable(std::vector<bool> unreachable, uint64_t now_ms);

  uint64_t round() const;
  const Block& committed_block() const;  // newest committed
  NodeIndex leader(uint64_t round) const;
  size_t pending_blocks() const;  // uncommitted blocks held in memory
  const SafetyState& safety_state() const;
  // Validators count and quorum.
  size_t validator_count() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace custos::consensus
