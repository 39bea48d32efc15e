// Full audit of a data directory, independent of the running node's state:
// replays the whole log from the genesis file and re-checks everything a
// node promised — every statement signature and registration decision (keys,
// revocations, sequence numbers), the entry id map, every stored log node
// (leaves and the inner nodes proofs are built from), every block's Merkle
// root, the block hash chain, both node signatures on every block, every
// consortium receipt signature kept for a block, and that no entry is stored
// beyond the newest block. Opens RocksDB read-only, so it
// may run beside a live node.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"
#include "ledger/rules.h"

namespace custos::ledger {

struct AuditReport {
  uint64_t blocks = 0;
  uint64_t entries = 0;
  uint64_t keys = 0;
  uint64_t signatures_verified = 0;
  uint64_t receipt_signatures = 0;  // consortium signatures over block roots
  uint64_t sequence_gaps = 0;
  uint64_t flagged_entries = 0;  // entries the rules flagged
  uint64_t rule_records = 0;     // the rules' records compared
  std::string root_hex;
  double seconds = 0;
};

// Ok when everything checks; otherwise kCorruption / kBadSignature with the
// first problem found and where (block height, log index). With `rules` (the
// same the nodes run), their decisions are replayed too: every entry must be
// accepted again with the same refs and flags, and the rules' stored records
// must equal the replayed ones. Memory: the rules' records are held while
// replaying.
Status audit(const std::string& data_dir, AuditReport* report,
             const std::function<void(const AuditReport&)>& progress = nullptr,
             const Rules* rules = nullptr);

}  // namespace custos::ledger
