#include "node/node.h"

#include <spdlog/spdlog.h>

namespace custos::node {

using Clock = std::chrono::steady_clock;

uint64_t unix_time_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Node::Node(NodeConfig config) : config_(std::move(config)) {}

Result<std::unique_ptr<Node>> Node::start(NodeConfig config) {
  std::unique_ptr<Node> node(new Node(std::move(config)));
  CUSTOS_ASSIGN_OR_RETURN(node->ledger_, ledger::Ledger::open(node->config_.ledger));
  node->sequencer_ = std::thread([n = node.get()] { n->run_sequencer(); });
  return node;
}

Node::~Node() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (sequencer_.joinable()) sequencer_.join();
}

size_t Node::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

Node::Ticket Node::enqueue(ByteView bytes) {
  Ticket t;
  t.start = Clock::now();
  auto admitted = ledger_->admit(bytes);
  if (!admitted.ok()) {
    metrics_.refused(admitted.status().code());
    t.ready = Result<Submission>(admitted.status());
    return t;
  }
  // Idempotent retries (the same bytes again) need no lookup here: the
  // sequencer refuses them as a replay of their own sequence number, and
  // await() then finds and returns the original registration.
  t.id = admitted->id;
  auto p = std::make_unique<Pending>();
  p->bytes = admitted->statement.bytes.size();
  p->admitted = std::move(admitted).value();
  t.future = p->promise.get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !healthy_) {
      t.ready = Result<Submission>(error(ErrorCode::kUnavailable, "the node is shutting down"));
      return t;
    }
    if (queue_.size() >= config_.pending_max) {
      metrics_.refused(ErrorCode::kUnavailable);
      t.ready = Result<Submission>(
          error(ErrorCode::kUnavailable, "the node is at capacity (" +
                                             std::to_string(config_.pending_max) +
                                             " statements waiting); retry later"));
      return t;
    }
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
  return t;
}

Result<Submission> Node::await(Ticket& t) {
  if (t.ready) return std::move(*t.ready);
  if (t.future.wait_for(std::chrono::milliseconds(config_.registration_timeout_ms)) !=
      std::future_status::ready) {
    return error(ErrorCode::kUnavailable, "not registered within " +
                                              std::to_string(config_.registration_timeout_ms) +
                                              " ms; look it up by id before resubmitting");
  }
  Result<ledger::Registered> r = t.future.get();
  if (!r.ok()) {
    // The same bytes were registered before (a retry, or two identical
    // submissions racing): answer with that registration.
    if (r.status().code() == ErrorCode::kReplay) {
      if (auto existing = ledger_->entry(t.id); existing.ok()) {
        return Submission{{existing->id, existing->index, existing->height, existing->gap}, true};
      }
    }
    return r.status();
  }
  metrics_.registration_latency.observe(
      std::chrono::duration<double>(Clock::now() - t.start).count());
  return Submission{std::move(r).value(), false};
}

Result<Submission> Node::submit(ByteView bytes) {
  Ticket t = enqueue(bytes);
  return await(t);
}

std::vector<Result<Submission>> Node::submit_batch(const std::vector<ByteView>& statements) {
  // Enqueue all first so the whole batch can share one block.
  std::vector<Ticket> tickets;
  tickets.reserve(statements.size());
  for (ByteView s : statements) tickets.push_back(enqueue(s));
  std::vector<Result<Submission>> out;
  out.reserve(tickets.size());
  for (auto& t : tickets) out.push_back(await(t));
  return out;
}

// Waits for the first statement, then gathers more until the block is full
// or block_interval_ms has passed since the first one arrived. They stay in
// queue_ until the block closes, so that pending_max (backpressure) and
// pending() count the block being formed, not only what arrived since.
std::vector<std::unique_ptr<Node::Pending>> Node::take_block() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
  const auto deadline = Clock::now() + std::chrono::milliseconds(config_.block_interval_ms);
  size_t n = 0;  // queue_[0, n) goes into the block
  size_t bytes = 0;
  for (;;) {
    // The first statement always fits: otherwise one larger than
    // block_bytes_max would stop the sequencer for good.
    while (n < queue_.size() && n < config_.block_entries_max &&
           (n == 0 || bytes + queue_[n]->bytes <= config_.block_bytes_max)) {
      bytes += queue_[n]->bytes;
      ++n;
    }
    const bool full = n >= config_.block_entries_max || n < queue_.size();
    if (full || stopping_ || Clock::now() >= deadline) break;
    if (!cv_.wait_until(lock, deadline, [&] { return stopping_ || queue_.size() > n; })) break;
  }
  std::vector<std::unique_ptr<Pending>> block;
  block.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    block.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return block;
}

void Node::run_sequencer() {
  for (;;) {
    std::vector<std::unique_ptr<Pending>> block = take_block();
    if (block.empty()) {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      continue;
    }
    std::vector<ledger::Admitted> batch;
    batch.reserve(block.size());
    for (auto& p : block) batch.push_back(std::move(p->admitted));
    const auto start = Clock::now();
    auto results = ledger_->append_block(std::move(batch), unix_time_ms());
    if (!results.ok()) {
      spdlog::critical("storage failure, refusing further statements: {}",
                       results.status().to_string());
      healthy_ = false;
      for (auto& p : block) p->promise.set_value(results.status());
      continue;
    }
    metrics_.block_write_latency.observe(
        std::chrono::duration<double>(Clock::now() - start).count());
    // Count before answering, so a submitter that has its answer (and then
    // reads /metrics) sees the counters include it.
    bool wrote_block = false;
    for (const Result<ledger::Registered>& r : *results) {
      if (r.ok()) {
        wrote_block = true;
        metrics_.statements_registered.fetch_add(1, std::memory_order_relaxed);
        if (r->gap) metrics_.sequence_gaps.fetch_add(1, std::memory_order_relaxed);
      } else {
        metrics_.refused(r.status().code());
      }
    }
    if (wrote_block) metrics_.blocks_written.fetch_add(1, std::memory_order_relaxed);
    for (size_t i = 0; i < block.size(); ++i) block[i]->promise.set_value(std::move((*results)[i]));
  }
}

}  // namespace custos::node
