#include "node/node.h"

#include <spdlog/spdlog.h>

#include "consensus/replica.h"
#include "crypto/hash.h"
#include "net/transport.h"
#include "node/consensus_store.h"
#include "node/forward_pool.h"
#include "node/wire.h"

namespace custos::node {

using Clock = std::chrono::steady_clock;

namespace {
// Results parked until a quorum signs their block. Beyond this many blocks
// the oldest are answered anyway: they are committed and durable; only their
// receipts wait for signatures (which peers may still send).
constexpr size_t kAwaitingHeightsMax = 1024;
// Forward-pool threads: statement checks from peers spread over the cores.
constexpr unsigned kForwardThreadsMax = 4;
// How often the driver asks the transport which peers it is connected to.
constexpr auto kReachabilityPollInterval = std::chrono::milliseconds(100);
// A peer disconnected this long is reported unreachable to consensus (see
// Replica::on_unreachable); shorter gaps (a start, a reconnect) are not.
constexpr auto kUnreachableAfter = std::chrono::milliseconds(500);
}  // namespace

struct Node::Event {
  uint32_t from = 0;
  Frame frame;
};

uint64_t unix_time_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Node::Node(NodeConfig config)
    : config_(std::move(config)), mempool_(config_.pending_max, kMempoolBytesMax) {}

Result<std::unique_ptr<Node>> Node::start(NodeConfig config) {
  std::unique_ptr<Node> node(new Node(std::move(config)));
  CUSTOS_RETURN_IF_ERROR(node->open());
  return node;
}

Status Node::open() {
  CUSTOS_ASSIGN_OR_RETURN(ledger_, ledger::Ledger::open(config_.ledger));
  const ledger::Genesis& genesis = ledger_->genesis();
  for (const auto& n : genesis.nodes) validators_.push_back(n.key);
  self_ = ledger_->node_index();

  consensus::Config cc;
  const consensus::Block genesis_block = consensus::genesis_block(genesis.hash);
  cc.genesis_id = genesis_block.id();
  cc.validators = validators_;
  cc.self = self_;
  cc.key = config_.ledger.node_key;
  cc.round_timeout_ms = config_.round_timeout_ms;
  cc.round_timeout_max_ms = config_.round_timeout_max_ms;
  cc.idle_proposal_ms = config_.idle_proposal_ms;
  cc.block_items_max = config_.block_entries_max;
  cc.block_bytes_max = config_.block_bytes_max;
  if (Status valid = consensus::validate_config(cc); !valid.ok()) {
    return error(valid.code(), "consensus: " + valid.message());
  }

  consensus_store_ = std::make_unique<ConsensusStore>(ledger_->store(), genesis_block);
  std::optional<Hash256> executed;
  if (auto marker = ledger_->meta(kMetaExecuted); marker.ok() && marker->size() == 32) {
    executed.emplace();
    std::copy(marker->begin(), marker->end(), executed->begin());
  }
  CUSTOS_ASSIGN_OR_RETURN(consensus::Recovered recovered, consensus_store_->recover(executed));
  replica_ = std::make_unique<consensus::Replica>(
      std::move(cc), std::move(recovered), *consensus_store_,
      [this](size_t max_items, size_t max_bytes,
             const std::function<bool(const Hash256&)>& in_flight) -> std::vector<Bytes> {
        // A one-node consortium certifies and commits within one replica
        // step (its votes go to itself), and a leader proposes at once while
        // an uncommitted ancestor carries payload: so one step could chain
        // many blocks of the few statements that arrived meanwhile, each a
        // ledger block with its signatures. One block with payload per step
        // instead; what arrives meanwhile waits for the next step, which
        // comes as soon as this one is written (fewer, larger blocks per
        // fsync). With peers a step proposes at most once anyway.
        if (validators_.size() == 1 && payload_taken_in_step_) return {};
        std::vector<Bytes> items = mempool_.take(max_items, max_bytes, in_flight);
        if (!items.empty()) payload_taken_in_step_ = true;
        return items;
      });

  if (config_.network && !config_.network->peers.empty()) {
    net::TransportConfig tc;
    tc.self_index = self_;
    tc.listen_host = config_.network->listen_host;
    tc.listen_port = config_.network->listen_port;
    for (const PeerAddress& p : config_.network->peers)
      tc.peers.push_back({p.index, p.host, p.port});
    tc.key_pem = config_.network->key_pem;
    tc.certificate_pem = config_.network->certificate_pem;
    tc.node_keys = validators_;
    tc.frame_bytes_max = consensus::kMessageBytesMax + 4096;  // plus the envelope
    forward_pool_ = std::make_unique<ForwardPool>(
        mempool_,
        [this](ByteView statement) {
          metrics_.checked(Metrics::CheckedAt::kForward);
          return ledger_->admit(statement);
        },
        [this] {
          std::lock_guard lock(mu_);
          signal_payload_locked();
        });
    // Before the transport: its thread delivers forwards from the start.
    forward_pool_->start(
        std::max(1u, std::min(kForwardThreadsMax, std::thread::hardware_concurrency())));
    CUSTOS_ASSIGN_OR_RETURN(transport_,
                            net::Transport::start(std::move(tc), [this](uint32_t from, Bytes b) {
                              on_network_frame(from, std::move(b));
                            }));
  }
  driver_ = std::thread([this] { run_driver(); });
  return Status();
}

Node::~Node() {
  // The driver first: it sends through the transport and polls its peer
  // connections, so the transport must outlive it.
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (driver_.joinable()) driver_.join();
  transport_.reset();  // no more frames from peers
  if (forward_pool_) forward_pool_->stop();
  // Nobody may be left waiting on a promise that will never be kept.
  const Status stopping = error(ErrorCode::kUnavailable, "the node is shutting down");
  for (auto& [height, parked] : awaiting_quorum_) {
    for (auto& [promise, registered] : parked) promise->set_value(registered);
  }
  std::lock_guard lock(waiters_mu_);
  for (auto& [id, promises] : waiters_) {
    for (auto& p : promises) p->set_value(stopping);
  }
}

ConsensusStatus Node::consensus_status() const {
  ConsensusStatus s;
  s.round = round_.load();
  s.committed_round = committed_round_.load();
  s.validators = validators_.size();
  s.leader = static_cast<uint32_t>(s.round % validators_.size());
  s.peer_connected.assign(validators_.size(), false);
  s.peer_connected[self_] = true;
  if (transport_) {
    for (const auto& p : transport_->stats()) {
      if (p.index < s.peer_connected.size()) s.peer_connected[p.index] = p.connected;
    }
  }
  return s;
}

// --- Submission (HTTP threads) ---

// The answer to a statement registered before: that registration, with its
// flags, so a device resending after a lost acknowledgement still hears
// that its firmware is unknown.
namespace {
Submission already_registered(const ledger::EntryInfo& existing) {
  return Submission{{existing.id, existing.index, existing.height, existing.gap, existing.flags},
                    true};
}
}  // namespace

Node::Ticket Node::enqueue(ByteView bytes) {
  Ticket t;
  t.start = Clock::now();
  metrics_.checked(Metrics::CheckedAt::kSubmission);
  auto admitted = ledger_->admit(bytes);
  if (!admitted.ok()) {
    metrics_.refused(admitted.status().code());
    t.ready = Result<Submission>(admitted.status());
    return t;
  }
  t.id = admitted->id;
  // No lookup of the id in the ledger here: it cost a RocksDB read per
  // statement, and a resubmission of registered bytes is answered anyway,
  // through the replay refusal its execution gets (see await) or, when it
  // executed a moment ago, through the kExecuted case below.
  if (!healthy_) {
    t.ready = Result<Submission>(
        error(ErrorCode::kUnavailable, "the node stopped after a storage failure"));
    return t;
  }
  auto promise = std::make_shared<Promise>();
  t.future = promise->get_future();
  {
    // Registered before the mempool sees the statement, so its execution
    // cannot slip between the two and leave this waiter behind.
    std::lock_guard lock(waiters_mu_);
    waiters_[t.id].push_back(promise);
  }
  // A copy for the peers (the mempool keeps the admitted form); a one-node
  // consortium has nobody to forward to.
  Bytes forward;
  if (transport_) forward = admitted->statement.bytes;
  switch (mempool_.add(std::move(admitted).value())) {
    case Mempool::Added::kAdded: {
      std::lock_guard lock(mu_);
      if (transport_) outgoing_forwards_.push_back(std::move(forward));
      signal_payload_locked();
      break;
    }
    case Mempool::Added::kDuplicate:  // in flight already: its execution answers us too
      t.duplicate = true;
      break;
    case Mempool::Added::kExecuted: {
      // Executed a moment ago, or earlier: if its block is written, answer
      // now; otherwise that execution is under way and answers the waiter.
      if (auto existing = ledger_->entry(t.id); existing.ok()) {
        forget_waiter(t.id, promise);
        t.future = {};
        t.ready = already_registered(*existing);
      }
      t.duplicate = true;  // another submission of the same bytes is being registered
      break;
    }
    case Mempool::Added::kFull: {
      forget_waiter(t.id, promise);
      metrics_.refused(ErrorCode::kUnavailable);
      t.ready = Result<Submission>(error(
          ErrorCode::kUnavailable, "the node is at capacity (" + std::to_string(mempool_.size()) +
                                       " statements waiting); retry later"));
      break;
    }
  }
  return t;
}

void Node::forget_waiter(const Hash256& id, const std::shared_ptr<Promise>& promise) {
  std::lock_guard lock(waiters_mu_);
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  auto& list = it->second;
  list.erase(std::remove(list.begin(), list.end(), promise), list.end());
  if (list.empty()) waiters_.erase(it);
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
        return already_registered(*existing);
      }
    }
    return r.status();
  }
  metrics_.registration_latency.observe(
      std::chrono::duration<double>(Clock::now() - t.start).count());
  return Submission{std::move(r).value(), t.duplicate};
}

Result<Submission> Node::submit(ByteView bytes) {
  Ticket t = enqueue(bytes);
  return await(t);
}

std::vector<Result<Submission>> Node::submit_batch(const std::vector<ByteView>& statements) {
  std::vector<Ticket> tickets;
  tickets.reserve(statements.size());
  for (ByteView s : statements) tickets.push_back(enqueue(s));
  std::vector<Result<Submission>> out;
  out.reserve(tickets.size());
  for (auto& t : tickets) out.push_back(await(t));
  return out;
}

// --- Transport thread and forward pool ---

void Node::on_network_frame(uint32_t from, Bytes bytes) {
  auto frame = decode_frame(bytes);
  if (!frame.ok()) {
    spdlog::debug("dropping a frame from node {}: {}", from, frame.status().to_string());
    return;
  }
  if (auto* forward = std::get_if<ForwardFrame>(&*frame)) {
    // What does not fit is dropped: its origin still has it.
    forward_pool_->push(std::move(forward->statements));
    return;
  }
  post(Event{from, std::move(frame).value()});
}

void Node::signal_payload_locked() {
  // The first statement since the last proposal starts the block interval.
  if (!payload_signal_at_) {
    payload_signal_at_ = Clock::now() + std::chrono::milliseconds(config_.block_interval_ms);
  }
  cv_.notify_one();
}

void Node::post(Event event) {
  std::lock_guard lock(mu_);
  if (events_.size() >= kDriverEventsMax) return;  // consensus recovers lost messages
  events_.push_back(std::move(event));
  cv_.notify_one();
}

// --- Driver thread ---

void Node::run_driver() {
  handle(replica_->start(unix_time_ms()));
  for (;;) {
    std::deque<Event> events;
    bool payload = false;
    {
      std::unique_lock lock(mu_);
      std::optional<Clock::time_point> deadline = payload_signal_at_;
      if (transport_ && (!deadline || next_reachability_poll_ < *deadline))
        deadline = next_reachability_poll_;
      if (timer_ms_) {
        const uint64_t now = unix_time_ms();
        const auto timer =
            Clock::now() + std::chrono::milliseconds(*timer_ms_ > now ? *timer_ms_ - now : 0);
        if (!deadline || timer < *deadline) deadline = timer;
      }
      // Also wake when a submission set a payload signal earlier than the
      // deadline waited for, so the wait is recomputed.
      const auto wake = [&] {
        return stopping_ || !events_.empty() || !outgoing_forwards_.empty() ||
               (payload_signal_at_ && (!deadline || *payload_signal_at_ < *deadline));
      };
      if (deadline) {
        cv_.wait_until(lock, *deadline, wake);
      } else {
        cv_.wait(lock, wake);
      }
      if (stopping_) return;
      events.swap(events_);
      if (payload_signal_at_ && Clock::now() >= *payload_signal_at_) {
        payload = true;
        payload_signal_at_.reset();
      }
    }
    flush_forwards();
    for (Event& e : events) on_frame(e.from, std::move(e.frame));
    if (payload) handle(replica_->on_payload_available(unix_time_ms()));
    if (timer_ms_ && unix_time_ms() >= *timer_ms_) {
      timer_ms_.reset();
      handle(replica_->on_timer(unix_time_ms()));
    }
    if (transport_ && Clock::now() >= next_reachability_poll_) poll_reachability();
  }
}

// Tells consensus which peers have been disconnected for a while, so that
// the rounds a crashed node would lead end at once (Replica::on_unreachable).
void Node::poll_reachability() {
  const auto now = Clock::now();
  next_reachability_poll_ = now + kReachabilityPollInterval;
  if (disconnected_since_.size() != validators_.size())
    disconnected_since_.assign(validators_.size(), std::nullopt);
  std::vector<bool> unreachable(validators_.size(), false);
  for (const auto& p : transport_->stats()) {
    if (p.index >= validators_.size() || p.index == self_) continue;
    auto& since = disconnected_since_[p.index];
    if (p.connected) {
      since.reset();
    } else if (!since) {
      since = now;
    }
    unreachable[p.index] = since && now - *since >= kUnreachableAfter;
  }
  if (unreachable == reported_unreachable_) return;
  for (size_t i = 0; i < unreachable.size(); ++i) {
    if (i < reported_unreachable_.size() && unreachable[i] != reported_unreachable_[i])
      spdlog::info("consensus: node {} is {}", i,
                   unreachable[i] ? "unreachable: its rounds end at once" : "reachable again");
  }
  reported_unreachable_ = unreachable;
  handle(replica_->on_unreachable(std::move(unreachable), unix_time_ms()));
}

void Node::flush_forwards() {
  std::vector<Bytes> pending;
  {
    std::lock_guard lock(mu_);
    pending.swap(outgoing_forwards_);
  }
  if (!transport_ || pending.empty()) return;
  ForwardFrame frame;
  size_t bytes = 0;
  for (Bytes& s : pending) {
    if (frame.statements.size() >= kForwardStatementsMax || bytes + s.size() > kForwardBytesMax) {
      send(std::nullopt, frame);
      frame.statements.clear();
      bytes = 0;
    }
    bytes += s.size();
    frame.statements.push_back(std::move(s));
  }
  if (!frame.statements.empty()) send(std::nullopt, frame);
}

void Node::send(std::optional<uint32_t> to, const Frame& frame) {
  if (!transport_) return;
  Bytes bytes = encode_frame(frame);
  if (to) {
    transport_->send(*to, std::move(bytes));
  } else {
    transport_->broadcast(bytes);
  }
}

void Node::on_frame(uint32_t from, Frame frame) {
  if (auto* c = std::get_if<ConsensusFrame>(&frame)) {
    handle(replica_->on_message(from, std::move(c->message), unix_time_ms()));
  } else if (auto* r = std::get_if<ReceiptSignatureFrame>(&frame)) {
    on_receipt_signature(from, r->height, r->signature, r->want_reply);
  }
}

void Node::handle(consensus::Output out) {
  payload_taken_in_step_ = false;  // every replica step ends here
  if (!healthy_) return;
  if (out.safety || !out.blocks.empty()) {
    // In a one-node consortium no vote, timeout or proposal ever leaves the
    // node, so nobody can be shown two different ones after a crash: the
    // write need not be synced on its own. Whatever it protects that a
    // client can see (an acknowledged entry) is executed below in a synced
    // write that comes later in the same RocksDB write-ahead log, and a
    // synced write makes every earlier one durable with it; a crash before
    // that loses only rounds nobody observed. With peers, the write is synced
    // before any message of this step leaves (docs/consensus.md §2).
    const bool sync = validators_.size() > 1;
    Status persisted = consensus_store_->persist(out.safety, out.blocks, sync);
    if (!persisted.ok()) {
      // Sending a vote that is not on disk could make this node equivocate
      // after a restart: stop taking part instead.
      spdlog::critical("cannot persist consensus state, stopping: {}", persisted.to_string());
      healthy_ = false;
      return;
    }
  }
  for (consensus::Envelope& e : out.messages) {
    if (e.to && *e.to == self_) {
      post(Event{self_, ConsensusFrame{std::move(e.message)}});
    } else {
      send(e.to, ConsensusFrame{std::move(e.message)});
    }
  }
  // Published before execution answers anyone, so a client that hears
  // "registered" sees a committed round at least its block's.
  round_ = replica_->round();
  committed_round_ = replica_->committed_block().round;
  if (!out.committed.empty()) execute(out.committed, out.committed_ids);
  if (out.timer_ms) timer_ms_ = out.timer_ms;
}

void Node::execute(const std::vector<consensus::Block>& blocks, const std::vector<Hash256>& ids) {
  if (!healthy_) return;
  // Statements this node admitted (or a peer forwarded and it checked) skip
  // a second signature check; the others are checked now. Either way the
  // outcome depends only on the statement and the log before it, so every
  // node decides the same.
  struct Executing {
    std::vector<Hash256> batch_ids;                     // aligned with the ledger block's batch
    std::vector<std::optional<size_t>> batch_position;  // per payload item, if in the batch
    std::unordered_map<Hash256, Result<ledger::Registered>, Hash256Hash> outcome;
  };
  std::vector<Executing> executing(blocks.size());
  std::vector<ledger::BlockInput> inputs(blocks.size());
  std::vector<Hash256> item_ids;  // every item of every block
  for (size_t k = 0; k < blocks.size(); ++k) {
    const consensus::Block& block = blocks[k];
    const Hash256 block_id = k < ids.size() ? ids[k] : block.id();
    if (Status kept = consensus_store_->keep_committed(block, block_id); !kept.ok()) {
      spdlog::warn("cannot keep committed block: {}", kept.to_string());
    }
    Executing& ex = executing[k];
    ledger::BlockInput& in = inputs[k];
    in.batch.reserve(block.payload.size());
    for (const Bytes& item : block.payload) {
      const Hash256 id = crypto::sha256(item);
      item_ids.push_back(id);
      // Checked once per node: by this node's client path or its forward
      // pool (perhaps still at work on it), else now.
      std::optional<ledger::Admitted> admitted = mempool_.extract(id);
      if (!admitted && forward_pool_) admitted = forward_pool_->claim(id);
      if (!admitted) {
        metrics_.checked(Metrics::CheckedAt::kExecution);
        auto checked = ledger_->admit(item);
        if (!checked.ok()) {
          ex.batch_position.push_back(std::nullopt);
          ex.outcome.emplace(id, checked.status());
          continue;
        }
        admitted = std::move(checked).value();
      }
      ex.batch_position.push_back(in.batch.size());
      in.batch.push_back(std::move(*admitted));
      ex.batch_ids.push_back(id);
    }
    in.context.time_ms = block.time_ms;
    if (block.author < validators_.size()) in.context.proposer = validators_[block.author].kid();
    in.context.meta.emplace_back(std::string(kMetaExecuted),
                                 Bytes(block_id.begin(), block_id.end()));
  }
  // Every block committed by one consensus step goes to disk in one synced
  // write (with the "executed" marker of the last), not one fsync each.
  const uint64_t height_before = ledger_->head().height;
  const auto start = Clock::now();
  auto results = ledger_->append_blocks(std::move(inputs));
  if (!results.ok()) {
    spdlog::critical("storage failure, refusing further statements: {}",
                     results.status().to_string());
    healthy_ = false;
    return;
  }
  mempool_.executed(item_ids);
  // The statements are in the log now: keep each executed consensus block
  // in its compact form, which refers to those entries instead of holding
  // the statements a second time.
  for (size_t k = 0; k < blocks.size(); ++k) {
    const Executing& ex = executing[k];
    std::vector<std::optional<uint64_t>> entry_index(ex.batch_position.size());
    for (size_t i = 0; i < entry_index.size(); ++i) {
      const auto& position = ex.batch_position[i];
      if (position && (*results)[k][*position].ok()) {
        entry_index[i] = (*results)[k][*position]->index;
      }
    }
    const Hash256 block_id = k < ids.size() ? ids[k] : blocks[k].id();
    if (Status compacted = consensus_store_->compact_executed(blocks[k], block_id, entry_index);
        !compacted.ok()) {
      spdlog::warn("cannot compact executed block: {}", compacted.to_string());
    }
  }
  const uint64_t height_after = ledger_->head().height;
  if (height_after > height_before) {
    metrics_.blocks_written.fetch_add(height_after - height_before, std::memory_order_relaxed);
    metrics_.block_write_latency.observe(
        std::chrono::duration<double>(Clock::now() - start).count());
  }
  uint64_t height = height_before;
  for (size_t k = 0; k < blocks.size(); ++k) {
    Executing& ex = executing[k];
    const std::vector<Result<ledger::Registered>>& block_results = (*results)[k];
    bool wrote = false;
    for (size_t i = 0; i < block_results.size(); ++i) {
      const Result<ledger::Registered>& r = block_results[i];
      if (r.ok()) {
        wrote = true;
        metrics_.statements_registered.fetch_add(1, std::memory_order_relaxed);
        if (r->gap) metrics_.sequence_gaps.fetch_add(1, std::memory_order_relaxed);
      }
      ex.outcome.emplace(ex.batch_ids[i], r);  // a duplicate in one block: the first decides
    }
    if (wrote) ++height;
    answer_executed(blocks[k], wrote ? std::optional<uint64_t>(height) : std::nullopt, ex.outcome);
  }
  while (awaiting_quorum_.size() > kAwaitingHeightsMax) {
    for (auto& [promise, registered] : awaiting_quorum_.begin()->second) {
      promise->set_value(registered);
    }
    awaiting_quorum_.erase(awaiting_quorum_.begin());
  }
}

void Node::answer_executed(
    const consensus::Block& block, std::optional<uint64_t> height,
    const std::unordered_map<Hash256, Result<ledger::Registered>, Hash256Hash>& outcome) {
  // Registrations wait for a quorum of receipt signatures; refusals are
  // answered now.
  std::vector<std::pair<std::shared_ptr<Promise>, ledger::Registered>> parked;
  {
    std::lock_guard lock(waiters_mu_);
    for (const auto& [id, result] : outcome) {
      auto it = waiters_.find(id);
      if (it == waiters_.end()) continue;
      for (auto& p : it->second) {
        if (result.ok()) {
          parked.emplace_back(p, *result);
        } else {
          metrics_.refused(result.status().code());
          p->set_value(result.status());
        }
      }
      waiters_.erase(it);
    }
  }
  if (!height) {
    for (auto& [promise, registered] : parked) promise->set_value(registered);
    return;
  }
  auto& list = awaiting_quorum_[*height];
  for (auto& p : parked) list.push_back(std::move(p));
  auto own = ledger_->own_receipt_signature(*height);
  if (own.ok()) {
    const bool behind = unix_time_ms() > block.time_ms + kCatchUpAgeMs;
    send(std::nullopt, ReceiptSignatureFrame{*height, *own, behind});
  }
  if (auto early = early_signatures_.find(*height); early != early_signatures_.end()) {
    auto sigs = std::move(early->second);
    early_signatures_.erase(early);
    early_signature_count_ -= sigs.size();
    for (auto& [from, sig] : sigs) on_receipt_signature(from, *height, sig, false);
  }
  answer_signed(*height);
}

void Node::on_receipt_signature(uint32_t from, uint64_t height, const ledger::NodeSignature& sig,
                                bool want_reply) {
  if (sig.node != from) return;  // a node speaks for itself only
  const uint64_t head = ledger_->head().height;
  if (height > head) {
    if (early_signature_count_ < kEarlySignaturesMax) {
      early_signatures_[height].emplace_back(from, sig);
      ++early_signature_count_;
    }
    return;
  }
  Status added = ledger_->add_receipt_signature(height, sig);
  if (!added.ok()) {
    spdlog::debug("receipt signature of node {} for block {} refused: {}", from, height,
                  added.to_string());
  } else {
    answer_signed(height);
  }
  if (want_reply && height <= head) {
    if (auto own = ledger_->own_receipt_signature(height); own.ok()) {
      send(from, ReceiptSignatureFrame{height, *own, false});
    }
  }
}

void Node::answer_signed(uint64_t height) {
  auto it = awaiting_quorum_.find(height);
  if (it == awaiting_quorum_.end()) return;
  if (ledger_->receipt_signature_count(height) < ledger_->receipt_quorum()) return;
  for (auto& [promise, registered] : it->second) promise->set_value(registered);
  awaiting_quorum_.erase(it);
}

}  // namespace custos::node
