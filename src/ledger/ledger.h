// The ledger of one node: admits signed statements, appends them in blocks
// to the RFC 9162 log, keeps everything in RocksDB, and answers reads
// (entries, receipts, checkpoints, proofs, paged queries).
//
// Threading: admit() and every read are safe from any thread. append_block()
// must be called by one thread at a time (the sequencer today, consensus
// commit later). Readers see a block only after it is durably written.
// Memory: O(number of keys + log2(log size)); nothing grows with the log.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "cose/receipt.h"
#include "cose/statement.h"
#include "ledger/block.h"
#include "ledger/genesis.h"
#include "ledger/key_registry.h"
#include "ledger/records.h"
#include "ledger/rules.h"
#include "merkle/merkle.h"
#include "storage/store.h"

namespace custos::ledger {

struct LedgerConfig {
  std::string data_dir;  // RocksDB lives in data_dir/db
  std::string node_name;
  crypto::PrivateKey node_key;
  Genesis genesis;
  storage::Options storage;
  // Rules beyond the core policy (the health domain); null for the bare
  // ledger. Every node of a consortium must run the same rules.
  std::shared_ptr<const Rules> rules;
};

// A statement that passed the stateless half of the policy.
struct Admitted {
  cose::Statement statement;
  Hash256 id{};  // SHA-256 of the statement bytes
};

struct Registered {
  Hash256 id{};
  uint64_t index = 0;
  uint64_t height = 0;
  std::optional<SequenceOutcome> gap;  // set when sequence numbers were skipped
  std::vector<std::string> flags;      // accepted but noteworthy (rules.h)
};

struct EntryInfo {
  Hash256 id{};
  uint64_t index = 0;
  uint64_t height = 0;
  uint64_t registered_ms = 0;  // time of its block
  Bytes statement;
  cose::StatementHeader header;
  std::optional<SequenceOutcome> gap;
  std::vector<std::string> refs;   // what the entry concerns (rules.h)
  std::vector<std::string> flags;  // accepted but noteworthy (rules.h)
};

struct Head {
  uint64_t height = 0;
  uint64_t log_size = 0;
  Hash256 root{};
  Hash256 header_hash{};
  uint64_t time_ms = 0;
};

struct Query {
  std::optional<std::string> issuer;
  std::optional<std::string> subject;
  std::optional<std::string> content_type;
  std::optional<std::string> ref;   // entries the rules say concern it, e.g. "device:pump-17"
  std::optional<std::string> flag;  // entries flagged with this code, e.g. "sequence-gap"
  std::optional<uint64_t> from_ms;  // registration time, inclusive
  std::optional<uint64_t> to_ms;    // registration time, exclusive
  // Ascending (log order): the first log index to consider. Descending: an
  // exclusive upper bound (indexes below it are considered; 0 = from the
  // newest entry).
  uint64_t cursor = 0;
  size_t limit = 100;
  // Newest first: "the newest entry with this ref at or before T" is one
  // seek (to_ms = T + 1, limit 1) instead of a scan of the older ones.
  bool descending = false;
};

struct QueryPage {
  std::vector<EntryInfo> entries;
  // Absent on the last page. Pass it back as Query::cursor for the next page
  // (descending: it is one above the index of the next entry to consider).
  std::optional<uint64_t> next_cursor;
};

inline constexpr size_t kQueryScanMax = 10000;  // index rows examined per page

// Where a block comes from. With consensus, every node appends the same
// committed block with the same context, so all logs are byte-identical.
struct BlockContext {
  uint64_t time_ms = 0;  // block time (never goes back: the ledger takes the max)
  Hash256 proposer{};    // kid of the node that proposed it
  // Meta records written in the same atomic batch (the node's note of which
  // consensus block it has executed). Written, unsynced, even when the
  // block registers nothing.
  std::vector<std::pair<std::string, Bytes>> meta;
};

// One block to append: its statements (admitted) and where it comes from.
struct BlockInput {
  std::vector<Admitted> batch;
  BlockContext context;
};

// One node's receipt signature for one block: the protected header it signed
// (naming its kid and the tree size) and the signature over (header, root).
struct NodeSignature {
  uint32_t node = 0;  // position in the genesis node list
  Bytes protected_bytes;
  Bytes signature;
};

class BlockRuleState;   // ledger.cc: the rules' writes of the block being built
class RuleRecordCache;  // ledger.cc: recently used rule records

class Ledger {
 public:
  // Opens the data directory, creating block 0 from the genesis on first use.
  // Refuses a data directory made for another genesis, and one whose stored
  // log nodes do not reproduce the newest block's root.
  static Result<std::unique_ptr<Ledger>> open(LedgerConfig config);
  ~Ledger();

  // Stateless policy: limits, structure, key known and not revoked, content
  // rules for the signer's roles, signature. Thread-safe.
  Result<Admitted> admit(ByteView statement_bytes) const;

  // Stateful policy and durable append of one block. The result has one
  // entry per input, in order: the registration or the refusal. A block is
  // written (synced) only if at least one statement is accepted. A non-ok
  // outer result means storage failed: the ledger refuses further appends.
  Result<std::vector<Result<Registered>>> append_block(std::vector<Admitted> batch,
                                                       const BlockContext& context);
  // A block proposed by this node at now_ms (tests, tools).
  Result<std::vector<Result<Registered>>> append_block(std::vector<Admitted> batch,
                                                       uint64_t now_ms);
  // Appends several blocks, in order, exactly as that many append_block calls
  // would (same heights, records and refusals), but in one atomic write, synced
  // once if any of them registers a statement: consensus often commits a few
  // blocks at once, and an fsync per block was what a node spent most of its
  // driver thread on. One result list per input block.
  Result<std::vector<std::vector<Result<Registered>>>> append_blocks(
      std::vector<BlockInput> blocks);

  // Receipt signatures of the consortium. The ledger signs each block it
  // writes; the others arrive from peers and are checked here (the node is a
  // genesis node, the header names its key and the block's tree size, the
  // signature verifies over the block's root) before they are kept.
  // kNotFound when the block is not written yet. Adding one twice is a no-op.
  Status add_receipt_signature(uint64_t height, const NodeSignature& signature);
  Result<NodeSignature> own_receipt_signature(uint64_t height) const;
  size_t receipt_signature_count(uint64_t height) const;
  size_t receipt_quorum() const { return quorum_; }
  uint32_t node_index() const { return node_index_; }

  // Meta records (see BlockContext::meta); kNotFound when absent.
  Result<Bytes> meta(std::string_view key) const;
  // The store, for the node's own column (Column::kConsensus) only.
  storage::Store& store() { return *store_; }

  Head head() const;
  Result<EntryInfo> entry(const Hash256& id) const;
  Result<EntryInfo> entry_at(uint64_t index) const;
  // A receipt bundle (cose/receipt.h): one RFC 9942 receipt per node that
  // signed the entry's block. kUnavailable until a quorum has signed.
  Result<Bytes> receipt(const Hash256& id) const;
  Result<BlockRecord> block(uint64_t height) const;
  Result<Bytes> checkpoint() const;  // COSE_Sign1 of the newest block
  Result<cose::ConsistencyProof> consistency(uint64_t size1, uint64_t size2) const;
  Result<QueryPage> query(const Query& q) const;
  Result<KeyState> key(const Hash256& kid) const;
  // Every key record (published copy), for listings.
  std::vector<std::pair<Hash256, KeyState>> keys() const;

  // The rules' records (Column::kDomain) as of the newest written block:
  // kNotFound when absent. Scans visit keys starting with `prefix` in order
  // until `visit` returns false; the second form starts at the first key at
  // or above `start` (for paging: pass the last key seen with a 0 byte
  // appended).
  Result<Bytes> rule_record(ByteView key) const;
  Status scan_rule_records(ByteView prefix,
                           const std::function<bool(ByteView key, ByteView value)>& visit) const;
  Status scan_rule_records(ByteView prefix, ByteView start,
                           const std::function<bool(ByteView key, ByteView value)>& visit) const;
  const Rules* rules() const { return config_.rules.get(); }

  const Genesis& genesis() const { return config_.genesis; }
  // The node's data directory (RocksDB is in data_dir/db; the domain keeps
  // its per-node, off-ledger vault beside it).
  const std::string& data_dir() const { return config_.data_dir; }
  const crypto::PublicKey& node_public_key() const { return config_.node_key.public_key(); }
  const std::string& node_name() const { return config_.node_name; }
  size_t key_count() const;
  uint64_t disk_bytes() const { return store_->disk_bytes(); }

 private:
  explicit Ledger(LedgerConfig config);
  Status initialize();
  Status load();
  // Adds one block's records to `wb` and advances the in-memory state
  // (frontier, working keys, `working` head) as if it were written. The
  // entry-id records are left in `entry_ids` for the caller to add (sorted).
  // Sets `wrote_block` when the block registers anything.
  std::vector<Result<Registered>> stage_block(
      std::vector<Admitted>& batch, const BlockContext& context, Head& working,
      storage::WriteBatch& wb, std::set<Hash256>& changed_keys,
      std::vector<std::pair<Hash256, records::EntryLocation>>& entry_ids, bool& wrote_block,
      BlockRuleState& rule_state);
  Result<records::EntryLocation> locate(const Hash256& id) const;
  // Builds the answer from entry bytes already read (and checked against id).
  Result<EntryInfo> entry_from_bytes(const Hash256& id, const records::EntryLocation& loc,
                                     Bytes bytes) const;
  Result<EntryInfo> entry_by_location(const Hash256& id, const records::EntryLocation& loc) const;
  // Stage 2 for one statement: the core key registry and the rules; on
  // acceptance the entry's records are added to `wb` (its id record to
  // `entry_ids`, which the caller writes sorted).
  Result<Registered> register_one(
      Admitted& a, uint64_t index, uint64_t height, uint64_t time_ms, BlockRuleState& rule_state,
      storage::WriteBatch& wb, std::vector<std::pair<Hash256, records::EntryLocation>>& entry_ids);
  Result<std::pair<uint64_t, uint64_t>> index_range_for_time(const Query& q,
                                                             const Head& head) const;
  Result<std::vector<NodeSignature>> receipt_signatures(uint64_t height) const;
  // The newest block at or below `height` that a quorum has signed.
  Result<BlockRecord> signed_block_at_or_below(uint64_t height) const;

  LedgerConfig config_;
  std::unique_ptr<storage::Store> store_;
  uint32_t node_index_ = 0;
  size_t quorum_ = 1;

  // Sequencer-only state.
  KeyRegistry working_keys_;
  merkle::Frontier frontier_;
  std::unique_ptr<RuleRecordCache> rule_cache_;
  std::atomic<bool> failed_{false};

  // Published state, read by any thread.
  mutable std::shared_mutex published_mu_;
  Head head_;
  std::map<Hash256, KeyState> published_keys_;
};

}  // namespace custos::ledger
