#include "node/forward_pool.h"

#include "crypto/hash.h"

namespace custos::node {

ForwardPool::ForwardPool(Mempool& mempool, Check check, Added added)
    : mempool_(mempool), check_(std::move(check)), added_(std::move(added)) {}

ForwardPool::~ForwardPool() {
  stop();
}

void ForwardPool::start(unsigned threads) {
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

void ForwardPool::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  checked_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

size_t ForwardPool::push(std::vector<Bytes> statements) {
  // Hashed before taking the lock: the threads checking wait on it.
  std::vector<Hash256> ids;
  ids.reserve(statements.size());
  for (const Bytes& s : statements) ids.push_back(crypto::sha256(s));
  size_t dropped = 0;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < statements.size(); ++i) {
      if (queue_.size() >= kForwardQueueStatementsMax) {
        dropped = statements.size() - i;
        break;
      }
      // The same bytes already here (submitted to two nodes, both forward
      // them): one check is enough.
      if (!ticket_of_.emplace(ids[i], next_ticket_).second) continue;
      queue_.push_back(Work{next_ticket_++, ids[i], std::move(statements[i])});
    }
  }
  work_cv_.notify_all();
  return dropped;
}

size_t ForwardPool::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void ForwardPool::forget(const Hash256& id, uint64_t ticket) {
  auto it = ticket_of_.find(id);
  if (it != ticket_of_.end() && it->second == ticket) ticket_of_.erase(it);
}

void ForwardPool::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Work work = std::move(queue_.front());
    queue_.pop_front();
    std::optional<ledger::Admitted> checked;
    if (!claimed_while_queued_.erase(work.ticket)) {  // else execution checks it
      // Running from here on, even while this only asks the mempool: a
      // claim in between waits instead of taking it for queued.
      running_.insert(work.ticket);
      lock.unlock();
      // Pending or executed already (this node's own client had it): no
      // second check. Asked without the pool's lock, which the transport
      // and the driver take, while the mempool's may be held by a leader
      // taking its payload.
      if (!mempool_.contains(work.id)) {
        // A refusal here is repeated at execution if a leader proposes it.
        if (auto admitted = check_(work.statement); admitted.ok()) {
          checked = std::move(admitted).value();
        }
      }
      lock.lock();
      running_.erase(work.ticket);
    }
    done_.emplace(work.ticket, std::make_pair(work.id, std::move(checked)));
    const size_t added = deliver_in_order();
    checked_cv_.notify_all();
    if (added > 0) {
      lock.unlock();
      added_();
      lock.lock();
    }
  }
}

size_t ForwardPool::deliver_in_order() {
  size_t added = 0;
  for (auto it = done_.begin(); it != done_.end() && it->first == next_ticket_to_deliver_;
       it = done_.erase(it), ++next_ticket_to_deliver_) {
    auto& [id, admitted] = it->second;
    forget(id, it->first);
    if (admitted && mempool_.add(std::move(*admitted)) == Mempool::Added::kAdded) ++added;
  }
  return added;
}

std::optional<ledger::Admitted> ForwardPool::claim(const Hash256& id) {
  std::unique_lock lock(mu_);
  auto it = ticket_of_.find(id);
  if (it == ticket_of_.end()) return std::nullopt;
  const uint64_t ticket = it->second;
  if (running_.count(ticket)) {
    checked_cv_.wait(lock, [&] { return stopping_ || !running_.count(ticket); });
  }
  if (auto done = done_.find(ticket); done != done_.end() && done->second.second) {
    std::optional<ledger::Admitted> admitted = std::move(done->second.second);
    done->second.second.reset();  // delivered in its turn as nothing
    return admitted;
  }
  if (ticket >= next_ticket_to_deliver_ && !running_.count(ticket) && !done_.count(ticket)) {
    // Still queued: the caller checks it now, the pool skips it.
    claimed_while_queued_.insert(ticket);
    return std::nullopt;
  }
  // Delivered to the mempool while this waited, or found there by the
  // pool's thread (then the pool's refusal, if any, is decided again by
  // the caller).
  return mempool_.extract(id);
}

}  // namespace custos::node
