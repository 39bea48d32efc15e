// One custos node: the ledger, a mempool, and the consensus replica that
// orders statements into blocks together with the other nodes of the
// consortium (consensus/replica.h) over mutual TLS (net/transport.h). A
// one-node consortium (the --dev node) runs the same path with no peers.
//
// Threads: HTTP workers call submit(); it admits the statement (signature
// verification runs there), puts it in the mempool, forwards it to the peers
// and waits. The driver thread owns the replica: it feeds it peer messages
// and timers, persists what it must before anything is sent, executes
// committed blocks into the ledger and trades receipt signatures. A small
// pool checks statements forwarded by peers. The transport has its own
// I/O thread. Every queue between them is bounded.
//
// A submitter hears "registered" once its statement's block is committed,
// durably written here, and signed by a quorum of nodes (so its receipt is
// ready): with at most f faulty nodes it cannot be lost.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ledger/ledger.h"
#include "node/mempool.h"
#include "node/metrics.h"
#include "node/wire.h"

namespace custos::consensus {
class Replica;
struct Output;
struct Block;
}  // namespace custos::consensus
namespace custos::net {
class Transport;
}

namespace custos::node {

class ConsensusStore;
class ForwardPool;

// Peer messages waiting for the driver thread; beyond this they are dropped
// (consensus recovers lost messages through its timeouts and block requests).
inline constexpr size_t kDriverEventsMax = 4096;
// Statements waiting in the mempool, and their bytes.
inline constexpr size_t kMempoolBytesMax = 128ull << 20;
// Receipt signatures kept for blocks this node has not written yet.
inline constexpr size_t kEarlySignaturesMax = 4096;
// A node executing a block older than this asks its peers for their receipt
// signatures (it was down or behind when they were sent).
inline constexpr uint64_t kCatchUpAgeMs = 2000;

struct PeerAddress {
  uint32_t index = 0;
  std::string host;
  uint16_t port = 0;
};

struct NetworkConfig {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;
  std::vector<PeerAddress> peers;  // every other genesis node
  std::string key_pem;             // this node's key (the ledger's node key)
  std::string certificate_pem;
};

struct NodeConfig {
  ledger::LedgerConfig ledger;
  int block_interval_ms = limits::kBlockIntervalMsDefault;  // a leader's wait for more statements
  size_t block_entries_max = limits::kBlockEntriesMax;
  size_t block_bytes_max = limits::kBlockBytesMax;
  size_t pending_max = limits::kPendingStatementsMax;  // mempool statements
  int registration_timeout_ms = limits::kRegistrationTimeoutMs;
  uint64_t round_timeout_ms = 1000;
  uint64_t round_timeout_max_ms = 10000;
  uint64_t idle_proposal_ms = 500;
  std::optional<NetworkConfig> network;  // absent: a one-node consortium
};

struct Submission {
  ledger::Registered registered;
  bool already_registered = false;  // an identical statement was registered before
};

struct ConsensusStatus {
  uint64_t round = 0;
  uint32_t leader = 0;
  uint64_t committed_round = 0;
  size_t validators = 1;
  std::vector<bool> peer_connected;  // by genesis index; true for self
};

class Node {
 public:
  static Result<std::unique_ptr<Node>> start(NodeConfig config);
  ~Node();  // stops the driver, the transport and the pool

  // Admits the statement in the caller's thread, hands it to consensus and
  // waits until it is registered (committed, written, receipt signed by a
  // quorum) or refused. Submitting bytes that are already registered returns
  // that registration (already_registered). kUnavailable when the mempool is
  // full (backpressure) or on timeout.
  Result<Submission> submit(ByteView statement_bytes);
  std::vector<Result<Submission>> submit_batch(const std::vector<ByteView>& statements);

  const ledger::Ledger& ledger() const { return *ledger_; }
  Metrics& metrics() { return metrics_; }
  size_t pending() const { return mempool_.size(); }
  bool healthy() const { return healthy_.load(); }
  ConsensusStatus consensus_status() const;

 private:
  using Promise = std::promise<Result<ledger::Registered>>;
  struct Ticket {
    std::optional<Result<Submission>> ready;
    std::future<Result<ledger::Registered>> future;
    Hash256 id{};
    bool duplicate = false;  // the same bytes were already waiting: answered as a retry
    std::chrono::steady_clock::time_point start;
  };
  struct Event;

  explicit Node(NodeConfig config);
  Status open();
  Ticket enqueue(ByteView bytes);
  Result<Submission> await(Ticket& ticket);
  void forget_waiter(const Hash256& id, const std::shared_ptr<Promise>& promise);

  // Driver thread.
  void run_driver();
  void handle(consensus::Output out);
  // Executes the blocks one consensus step committed (ids aligned) in one
  // ledger write, then answers their submitters.
  void execute(const std::vector<consensus::Block>& blocks, const std::vector<Hash256>& ids);
  void answer_executed(
      const consensus::Block& block, std::optional<uint64_t> height,
      const std::unordered_map<Hash256, Result<ledger::Registered>, Hash256Hash>& outcome);
  void on_frame(uint32_t from, Frame frame);
  void on_receipt_signature(uint32_t from, uint64_t height, const ledger::NodeSignature& sig,
                            bool want_reply);
  void answer_signed(uint64_t height);
  void send(std::optional<uint32_t> to, const Frame& frame);
  void flush_forwards();
  void poll_reachability();

  // Transport thread and forward pool.
  void on_network_frame(uint32_t from, Bytes bytes);
  void post(Event event);
  // New statements in the mempool: wakes the driver (mu_ held).
  void signal_payload_locked();

  NodeConfig config_;
  std::unique_ptr<ledger::Ledger> ledger_;
  Metrics metrics_;
  std::atomic<bool> healthy_{true};
  Mempool mempool_;
  std::vector<crypto::PublicKey> validators_;
  uint32_t self_ = 0;

  // Waiters by statement id; results parked by height until a quorum signs.
  std::mutex waiters_mu_;
  std::unordered_map<Hash256, std::vector<std::shared_ptr<Promise>>, Hash256Hash> waiters_;

  // Driver state (driver thread only).
  std::unique_ptr<ConsensusStore> consensus_store_;
  std::unique_ptr<consensus::Replica> replica_;
  std::optional<uint64_t> timer_ms_;
  std::chrono::steady_clock::time_point next_reachability_poll_{};
  std::vector<std::optional<std::chrono::steady_clock::time_point>> disconnected_since_;
  std::vector<bool> reported_unreachable_;
  bool payload_taken_in_step_ = false;  // see the payload source in open()
  std::map<uint64_t, std::vector<std::pair<std::shared_ptr<Promise>, ledger::Registered>>>
      awaiting_quorum_;
  std::map<uint64_t, std::vector<std::pair<uint32_t, ledger::NodeSignature>>> early_signatures_;
  size_t early_signature_count_ = 0;

  // Inbox of the driver thread.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  bool stopping_ = false;
  std::optional<std::chrono::steady_clock::time_point> payload_signal_at_;
  std::vector<Bytes> outgoing_forwards_;
  std::atomic<uint64_t> round_{0}, committed_round_{0};

  // Forward pool: peers' statements checked before they enter the mempool.
  std::unique_ptr<ForwardPool> forward_pool_;

  std::unique_ptr<net::Transport> transport_;
  std::thread driver_;
};

uint64_t unix_time_ms();

}  // namespace custos::node
