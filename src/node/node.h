// One custos node: the ledger plus the sequencer that turns admitted
// statements into blocks. Submitters block until their statement is durably
// registered (or refused); the sequencer groups whatever is queued into one
// block and one synced write, so throughput grows with concurrency while the
// number of fsyncs stays bounded.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ledger/ledger.h"
#include "node/metrics.h"

namespace custos::node {

struct NodeConfig {
  ledger::LedgerConfig ledger;
  int block_interval_ms = limits::kBlockIntervalMsDefault;
  size_t block_entries_max = limits::kBlockEntriesMax;
  size_t block_bytes_max = limits::kBlockBytesMax;
  size_t pending_max = limits::kPendingStatementsMax;
  int registration_timeout_ms = limits::kRegistrationTimeoutMs;
};

struct Submission {
  ledger::Registered registered;
  bool already_registered = false;  // an identical statement was registered before
};

class Node {
 public:
  static Result<std::unique_ptr<Node>> start(NodeConfig config);
  ~Node();  // stops the sequencer after draining what is queued

  // Admits the statement in the caller's thread (signature verification runs
  // here, so it spreads over the HTTP worker threads), queues it, and waits
  // until it is durably registered or refused. Submitting bytes that are
  // already registered returns that registration (already_registered).
  // kUnavailable when the queue is full (backpressure) or on timeout.
  Result<Submission> submit(ByteView statement_bytes);
  std::vector<Result<Submission>> submit_batch(const std::vector<ByteView>& statements);

  const ledger::Ledger& ledger() const { return *ledger_; }
  Metrics& metrics() { return metrics_; }
  size_t pending() const;
  bool healthy() const { return healthy_.load(); }

 private:
  struct Pending {
    ledger::Admitted admitted;
    std::promise<Result<ledger::Registered>> promise;
    size_t bytes = 0;
  };

  explicit Node(NodeConfig config);
  // Admission half of submit: either a ready answer or a future to wait on.
  struct Ticket {
    std::optional<Result<Submission>> ready;
    std::future<Result<ledger::Registered>> future;
    Hash256 id{};
    std::chrono::steady_clock::time_point start;
  };
  Ticket enqueue(ByteView bytes);
  Result<Submission> await(Ticket& ticket);
  void run_sequencer();
  std::vector<std::unique_ptr<Pending>> take_block();

  NodeConfig config_;
  std::unique_ptr<ledger::Ledger> ledger_;
  Metrics metrics_;
  std::atomic<bool> healthy_{true};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Pending>> queue_;
  bool stopping_ = false;
  std::thread sequencer_;
};

uint64_t unix_time_ms();

}  // namespace custos::node
