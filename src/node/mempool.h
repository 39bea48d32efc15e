// Statements admitted by this node (signature and stateless policy checked
// once, here or by a peer's forward) and not yet executed. Every node holds
// every pending statement, so whichever node leads a round can propose it.
//
// Items stay until a committed block executes them: a proposal that never
// commits loses nothing. Thread-safe.
#pragma once

#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ledger/ledger.h"

namespace custos::node {

// Ids of executed statements remembered so that a late forward of one of
// them is not admitted (and proposed, and refused as a replay) again.
inline constexpr size_t kRecentlyExecutedMax = 1 << 17;

class Mempool {
 public:
  Mempool(size_t items_max, size_t bytes_max) : items_max_(items_max), bytes_max_(bytes_max) {}

  enum class Added { kAdded, kDuplicate, kExecuted, kFull };
  Added add(ledger::Admitted admitted);

  // Up to max_items / max_bytes statements in arrival order, skipping those
  // for which in_flight(id) holds. Items are not removed.
  std::vector<Bytes> take(size_t max_items, size_t max_bytes,
                          const std::function<bool(const Hash256&)>& in_flight) const;

  // The admitted form of a pending statement (its signature already checked).
  std::optional<ledger::Admitted> get(const Hash256& id) const;
  // Moves a statement out for execution (no copy of its parsed form); the
  // caller reports it with executed() afterwards.
  std::optional<ledger::Admitted> extract(const Hash256& id);
  // Drops executed statements and remembers their ids.
  void executed(const std::vector<Hash256>& ids);

  bool contains(const Hash256& id) const;  // pending or recently executed
  size_t size() const;
  size_t bytes() const;

 private:
  const size_t items_max_;
  const size_t bytes_max_;
  mutable std::mutex mu_;
  std::unordered_map<Hash256, ledger::Admitted, Hash256Hash> items_;
  std::deque<Hash256> order_;  // arrival order; may hold ids already executed
  size_t bytes_ = 0;
  std::unordered_set<Hash256, Hash256Hash> recent_;
  std::deque<Hash256> recent_order_;
};

}  // namespace custos::node
