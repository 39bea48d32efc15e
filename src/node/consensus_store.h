// The node's consensus state on disk, in the ledger's RocksDB (column
// "consensus"), and the BlockReader the replica reads blocks through.
//
//   "s"                      -> SafetyState (synced before any vote leaves)
//   "b" || block id          -> consensus block (every block persisted); once
//                               executed, its compact form (compact_executed)
//   "r" || be64(round) || id -> empty; finds the blocks above the committed
//                               one at start without scanning every block
// Which committed block the ledger has executed is a ledger meta record
// ("consensus_executed": block id), written in the same batch as the block's
// entries, so execution and the log never disagree after a crash.
#pragma once

#include <cstring>
#include <unordered_set>

#include "consensus/replica.h"
#include "storage/store.h"

namespace custos::node {

inline constexpr std::string_view kMetaExecuted = "consensus_executed";
// Block ids remembered as persisted (see ConsensusStore::persisted_).
inline constexpr size_t kPersistedIdsMax = 2 * consensus::kPendingBlocksMax;

// An executed block's compact record: an array of these two.
inline constexpr size_t kCompactBlockFields = 2;

class ConsensusStore : public consensus::BlockReader {
 public:
  ConsensusStore(storage::Store& store, consensus::Block genesis)
      : store_(store), genesis_(std::move(genesis)), genesis_id_(genesis_.id()) {}

  std::optional<consensus::Block> get(const Hash256& id) const override;

  // One write: what the replica asks to persist before it speaks. Synced,
  // except where the caller knows nothing it protects can leave the node
  // before a later synced write (a one-node consortium, see Node::handle).
  Status persist(const std::optional<consensus::SafetyState>& safety,
                 const std::vector<consensus::Block>& blocks, bool sync = true);
  // Keeps a committed block (fetched while catching up) so this node can
  // serve it to others; unsynced, and skipped when already stored. `id` is
  // block.id().
  Status keep_committed(const consensus::Block& block, const Hash256& id);

  // After a block is executed (its entries durably written), replaces the
  // stored block by its compact form, so the statements are stored once, as
  // log entries: [block without payload (bstr), [* item]] where an item is
  // the log index of the registered entry that holds its bytes (uint) or, for
  // an item the ledger refused, its bytes (bstr). get() rebuilds the block
  // from the entries and checks it against its id. `entry_index` is aligned
  // with block.payload. Unsynced: if a crash loses it, the full block stays.
  // A no-op when no item was registered.
  Status compact_executed(const consensus::Block& block, const Hash256& id,
                          const std::vector<std::optional<uint64_t>>& entry_index);

  // The replica's starting point: the safety state, the newest executed
  // block (`executed_id` from the ledger; nullopt at first start) and the
  // stored blocks above it.
  Result<consensus::Recovered> recover(const std::optional<Hash256>& executed_id) const;

 private:
  // The block from a compact record (see compact_executed); its id is
  // checked by the caller.
  Result<consensus::Block> expand(ByteView compact) const;

  storage::Store& store_;
  consensus::Block genesis_;
  Hash256 genesis_id_;
  // Ids of blocks persist() wrote since start and not yet committed, so
  // keep_committed() need not read a block (up to 16 MiB) back to learn
  // that it is stored. Bounded: cleared when it grows past
  // kPersistedIdsMax (blocks that never commit), after which the read decides.
  std::unordered_set<Hash256, Hash256Hash> persisted_;
};

}  // namespace custos::node
