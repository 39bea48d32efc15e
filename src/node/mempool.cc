#include "node/mempool.h"

#include <algorithm>

namespace custos::node {

Mempool::Added Mempool::add(ledger::Admitted admitted) {
  std::lock_guard lock(mu_);
  if (recent_.count(admitted.id)) return Added::kExecuted;
  if (items_.count(admitted.id)) return Added::kDuplicate;
  const size_t size = admitted.statement.bytes.size();
  if (items_.size() >= items_max_ || bytes_ + size > bytes_max_) return Added::kFull;
  order_.push_back(admitted.id);
  bytes_ += size;
  items_.emplace(admitted.id, std::move(admitted));
  return Added::kAdded;
}

std::vector<Bytes> Mempool::take(size_t max_items, size_t max_bytes,
                                 const std::function<bool(const Hash256&)>& in_flight) const {
  std::lock_guard lock(mu_);
  std::vector<const ledger::Admitted*> picked;
  size_t bytes = 0;
  for (const Hash256& id : order_) {
    if (picked.size() >= max_items) break;
    auto it = items_.find(id);
    if (it == items_.end() || in_flight(id)) continue;
    const size_t size = it->second.statement.bytes.size();
    if (bytes + size > max_bytes) break;
    bytes += size;
    picked.push_back(&it->second);
  }
  // One key's statements in sequence order, whatever order they reached
  // this node in (a device may send consecutive ones to different nodes):
  // executed out of order, the earlier one would be refused as a replay.
  std::stable_sort(picked.begin(), picked.end(), [](const auto* a, const auto* b) {
    const auto& ha = a->statement.header;
    const auto& hb = b->statement.header;
    return ha.kid != hb.kid ? ha.kid < hb.kid : ha.sequence < hb.sequence;
  });
  std::vector<Bytes> out;
  out.reserve(picked.size());
  for (const auto* a : picked) out.push_back(a->statement.bytes);
  return out;
}

std::optional<ledger::Admitted> Mempool::get(const Hash256& id) const {
  std::lock_guard lock(mu_);
  auto it = items_.find(id);
  if (it == items_.end()) return std::nullopt;
  return it->second;
}

std::optional<ledger::Admitted> Mempool::extract(const Hash256& id) {
  std::lock_guard lock(mu_);
  auto it = items_.find(id);
  if (it == items_.end()) return std::nullopt;
  std::optional<ledger::Admitted> out(std::move(it->second));
  bytes_ -= out->statement.bytes.size();
  items_.erase(it);
  // Remembered at once, so a forward of it arriving mid-execution is not
  // admitted again.
  if (recent_.insert(id).second) recent_order_.push_back(id);
  return out;
}

void Mempool::executed(const std::vector<Hash256>& ids) {
  std::lock_guard lock(mu_);
  for (const Hash256& id : ids) {
    auto it = items_.find(id);
    if (it != items_.end()) {
      bytes_ -= it->second.statement.bytes.size();
      items_.erase(it);
    }
    if (recent_.insert(id).second) recent_order_.push_back(id);
  }
  while (recent_order_.size() > kRecentlyExecutedMax) {
    recent_.erase(recent_order_.front());
    recent_order_.pop_front();
  }
  // Executed ids leave order_ lazily from the front, so it stays O(pending).
  while (!order_.empty() && !items_.count(order_.front())) order_.pop_front();
  if (order_.size() > 2 * items_.size() + 1024) {  // executed out of order: compact
    std::deque<Hash256> kept;
    for (const Hash256& id : order_) {
      if (items_.count(id)) kept.push_back(id);
    }
    order_.swap(kept);
  }
}

bool Mempool::contains(const Hash256& id) const {
  std::lock_guard lock(mu_);
  return items_.count(id) || recent_.count(id);
}

size_t Mempool::size() const {
  std::lock_guard lock(mu_);
  return items_.size();
}

size_t Mempool::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

}  // namespace custos::node
