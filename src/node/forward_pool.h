// Statements forwarded by peers, checked (parse, signature, stateless
// policy) by a few threads before they enter the mempool.
//
// Checks run in parallel but their results enter the mempool in the order
// the statements arrived (tickets), so one device's consecutive sequence
// numbers are not swapped on the way to a leader (the later one would make
// the earlier a replay).
//
// A block may commit a statement before this node's check of it is done:
// the pool lags when the cores are busy. Execution then claims it here
// instead of checking it a second time: a finished check is handed over, a
// running one is waited for (less than one signature verification), and a
// queued one is taken out of the queue for the caller to check. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ledger/ledger.h"
#include "node/mempool.h"

namespace custos::node {

// Statements waiting for a check; beyond this the rest of a forward is
// dropped (its origin still has it and proposes it when it leads).
inline constexpr size_t kForwardQueueStatementsMax = 65536;

class ForwardPool {
 public:
  using Check = std::function<Result<ledger::Admitted>(ByteView statement)>;
  using Added = std::function<void()>;

  // `check` runs on the pool's threads; `added` after statements entered
  // the mempool (outside the pool's lock).
  ForwardPool(Mempool& mempool, Check check, Added added);
  ~ForwardPool();  // stops and joins the threads
  ForwardPool(const ForwardPool&) = delete;
  ForwardPool& operator=(const ForwardPool&) = delete;

  void start(unsigned threads);
  void stop();

  // Queues statements for a check (bytes already in the pool are not queued
  // twice); returns how many were dropped at the queue's limit.
  size_t push(std::vector<Bytes> statements);

  // For execution: the checked form of a statement that is still in the
  // pool or was just delivered to the mempool, waiting if its check is
  // running. nullopt when the caller must check it itself: not here (or
  // queued, and now taken out of the queue), or refused by the pool's check
  // (which a later ledger state may decide otherwise).
  std::optional<ledger::Admitted> claim(const Hash256& id);

  size_t queued() const;

 private:
  struct Work {
    uint64_t ticket = 0;
    Hash256 id{};
    Bytes statement;
  };
  void run();
  size_t deliver_in_order();  // with mu_ held; returns how many the mempool took
  void forget(const Hash256& id, uint64_t ticket);

  Mempool& mempool_;
  const Check check_;
  const Added added_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;     // work queued, or stopping
  std::condition_variable checked_cv_;  // a check finished, or stopping
  std::deque<Work> queue_;
  uint64_t next_ticket_ = 0;
  uint64_t next_ticket_to_deliver_ = 0;
  std::unordered_map<Hash256, uint64_t, Hash256Hash> ticket_of_;  // queued, running or done
  std::unordered_set<uint64_t> running_;
  std::unordered_set<uint64_t> claimed_while_queued_;
  std::map<uint64_t, std::pair<Hash256, std::optional<ledger::Admitted>>> done_;  // out of turn
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace custos::node
