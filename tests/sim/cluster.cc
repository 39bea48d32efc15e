#include "sim/cluster.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <iostream>
#include <list>
#include <sstream>
#include <utility>

#include "core/quorum.h"
#include "crypto/hash.h"

namespace custos::sim {

using consensus::Block;
using consensus::Envelope;
using consensus::Message;
using consensus::Output;

const char* behaviour_name(Behaviour behaviour) {
  switch (behaviour) {
    case Behaviour::kHonest:
      return "honest";
    case Behaviour::kTwins:
      return "twins";
    case Behaviour::kEquivocator:
      return "equivocator";
    case Behaviour::kForger:
      return "forger";
    case Behaviour::kWithholder:
      return "withholder";
  }
  return "?";
}

// Ed25519 keys derived from the validator index, so block ids (which include
// QC signatures) are the same in every run of a seed. The PKCS#8 prefix is
// the fixed RFC 8410 header for a 32-byte Ed25519 seed.
const crypto::PrivateKey& validator_key(NodeIndex index) {
  static std::map<NodeIndex, crypto::PrivateKey> cache;
  auto it = cache.find(index);
  if (it != cache.end()) return it->second;
  Bytes der = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
               0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
  Hash256 seed = crypto::sha256(as_view("custos-sim-validator-" + std::to_string(index)));
  der.insert(der.end(), seed.begin(), seed.end());
  std::string pem =
      "-----BEGIN PRIVATE KEY-----\n" + base64_encode(der) + "\n-----END PRIVATE KEY-----\n";
  auto key = crypto::PrivateKey::from_pem(pem);
  assert(key.ok() && "the simulation's own key bytes must parse");
  return cache.emplace(index, std::move(key).value()).first->second;
}

namespace {

std::string short_hex(const Hash256& id) {
  return to_hex(ByteView(id.data(), 8));
}

// "proposal r12 3f2a...", for the trace.
std::string describe(const Message& message) {
  std::string text = consensus::message_name(message);
  if (auto* p = std::get_if<consensus::Proposal>(&message)) {
    return text + " r" + std::to_string(p->block.round) + " " + short_hex(p->block.id());
  }
  if (auto* v = std::get_if<consensus::Vote>(&message)) {
    return text + " r" + std::to_string(v->round) + " " + short_hex(v->block_id);
  }
  if (auto* t = std::get_if<consensus::Timeout>(&message)) {
    return text + " r" + std::to_string(t->round) + " qc r" + std::to_string(t->high_qc.round);
  }
  if (auto* q = std::get_if<consensus::BlockRequest>(&message)) {
    return text + " " + short_hex(q->block_id) + " x" + std::to_string(q->count);
  }
  if (auto* r = std::get_if<consensus::BlockResponse>(&message)) {
    text += " " + std::to_string(r->blocks.size()) + " blocks";
    if (!r->blocks.empty()) {
      text += " " + short_hex(r->blocks.front().id()) + " r" +
              std::to_string(r->blocks.front().round) + ".." +
              std::to_string(r->blocks.back().round);
    }
  }
  return text;
}

// What a node keeps on disk. Safety state and blocks are written synced (the
// driver contract); the ledger (committed blocks, i.e. the executed log) is
// written unsynced and synced periodically, so a crash loses its tail.
class Disk : public consensus::BlockReader {
 public:
  std::optional<Bytes> safety;  // SafetyState::encode()
  std::map<Hash256, Block> blocks;
  std::vector<Block> ledger;  // committed after genesis, oldest first
  size_t ledger_synced = 0;

  std::map<Hash256, size_t> ledger_index;  // block id -> position in ledger

  // Like the real node: blocks written for the replica, then the ledger
  // (committed blocks the replica never voted for are only there).
  std::optional<Block> get(const Hash256& id) const override {
    auto it = blocks.find(id);
    if (it != blocks.end()) return it->second;
    auto at = ledger_index.find(id);
    if (at != ledger_index.end()) return ledger[at->second];
    return std::nullopt;
  }

  void append_ledger(const Block& block, const Hash256& id) {
    ledger_index[id] = ledger.size();
    ledger.push_back(block);
  }
  // A crash: unsynced ledger writes are gone.
  void drop_unsynced_ledger() {
    for (size_t i = ledger_synced; i < ledger.size(); ++i) ledger_index.erase(ledger[i].id());
    ledger.resize(ledger_synced);
  }
};

struct Instance {
  InstanceId id = 0;
  NodeIndex index = 0;
  Behaviour behaviour = Behaviour::kHonest;
  uint64_t clock_offset_ms = 0;
  Disk disk;
  std::unique_ptr<consensus::Replica> replica;  // null while crashed
  uint64_t incarnation = 0;                     // bumps on crash: stale events are ignored
  uint64_t timer_generation = 0;                // the latest armed timer wins
  // Mempool in arrival order; lives in memory, so a crash empties it.
  std::list<std::pair<Hash256, Bytes>> mempool;
  std::map<Hash256, std::list<std::pair<Hash256, Bytes>>::iterator> mempool_index;
  std::set<Hash256> executed_ids;
  uint64_t last_tampered_round = 0;
  size_t liveness_base = 0;

  bool honest() const { return behaviour == Behaviour::kHonest; }
  bool up() const { return replica != nullptr; }
};

class Cluster {
 public:
  Cluster(const Scenario& scenario, uint64_t seed)
      : scenario_(scenario),
        seed_(seed),
        rng_(seed),
        check_rng_(seed ^ 0x9e3779b97f4a7c15ull),
        genesis_(consensus::genesis_block(crypto::sha256(as_view("custos-sim-genesis")))) {}

  RunResult run();

 private:
  // --- setup ---
  void build_instances();
  void schedule_partitions();
  // Group of each instance for one partition phase.
  std::vector<size_t> random_groups(size_t groups_max, size_t* groups);
  std::vector<size_t> twins_split_groups();
  void schedule_crashes();
  void schedule_items();
  void schedule_ledger_sync(Instance& inst, uint64_t delay_ms);
  void heal();

  // --- driving replicas ---
  uint64_t local_now(const Instance& inst) const { return queue_.now_ms() + inst.clock_offset_ms; }
  consensus::Config make_config(const Instance& inst) const;
  consensus::Recovered recover(const Instance& inst);
  void start(Instance& inst);
  void crash(Instance& inst);
  void restart_later(Instance& inst);
  void handle_output(Instance& inst, Output out);
  void arm_timer(Instance& inst, uint64_t timer_ms);
  void send(Instance& inst, const Envelope& envelope);
  void execute(Instance& inst, const Block& block);
  void deliver(InstanceId from, InstanceId to, const Packet& packet);
  void deliver_consensus(Instance& from, Instance& to, const Packet& packet);
  void add_item(Instance& inst, const Bytes& item);
  std::vector<Bytes> take_payload(Instance& inst, size_t max_items, size_t max_bytes,
                                  const std::function<bool(const Hash256&)>& in_flight);

  // --- Byzantine behaviours ---
  std::vector<Envelope> misbehave(Instance& inst, std::vector<Envelope> messages);
  void equivocate(Instance& inst, const Block& block, std::vector<Envelope>& out);
  void tamper_on_receive(Instance& inst, const Message& message);

  // --- checks and reporting ---
  void check_invariants();
  bool liveness_met() const;
  std::string liveness_report() const;
  void fail(const std::string& reason);
  void trace(const std::string& text);
  void mix(uint64_t value) { digest_ = (digest_ ^ value) * 0x100000001b3ull; }
  void mix(const Hash256& id) {
    for (size_t i = 0; i < 8; ++i) mix(id[i]);
  }
  std::vector<NodeIndex> other_indexes(NodeIndex self) const;

  const Scenario& scenario_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::mt19937_64 check_rng_;  // the checkers' own, so checking does not change the run
  EventQueue queue_;
  std::unique_ptr<Network> network_;
  Block genesis_;
  std::vector<crypto::PublicKey> validators_;
  std::vector<std::unique_ptr<Instance>> instances_;
  CommitChecker commits_;
  ReceiptChecker receipts_;
  bool receipts_dirty_ = false;
  bool healed_ = false;
  bool injected_bug_done_ = false;
  uint64_t item_counter_ = 0;
  std::string failure_;
  std::deque<std::string> trace_;
  RunStats stats_;
  uint64_t digest_ = 0xcbf29ce484222325ull;
  // CUSTOS_SIM_TRACE=1: every trace line to stderr as it happens (debugging).
  bool print_trace_ = std::getenv("CUSTOS_SIM_TRACE") != nullptr;
};

std::vector<NodeIndex> Cluster::other_indexes(NodeIndex self) const {
  std::vector<NodeIndex> others;
  for (NodeIndex i = 0; i < scenario_.validators; ++i) {
    if (i != self) others.push_back(i);
  }
  return others;
}

void Cluster::build_instances() {
  size_t n = scenario_.validators;
  assert((scenario_.byzantine.size() <= fault_tolerance(n) || scenario_.beyond_fault_model) &&
         "at most f Byzantine validators");
  for (NodeIndex i = 0; i < n; ++i) validators_.push_back(validator_key(i).public_key());

  std::vector<NodeIndex> order(n);
  for (NodeIndex i = 0; i < n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng_);
  std::vector<Behaviour> behaviour(n, Behaviour::kHonest);
  for (size_t k = 0; k < scenario_.byzantine.size(); ++k) {
    behaviour[order[k]] = scenario_.byzantine[k];
  }

  commits_.set_genesis(CommitRecord{genesis_.id(), genesis_.parent_id, genesis_.round});
  for (NodeIndex i = 0; i < n; ++i) {
    int copies = behaviour[i] == Behaviour::kTwins ? 2 : 1;
    for (int c = 0; c < copies; ++c) {
      auto inst = std::make_unique<Instance>();
      inst->id = static_cast<InstanceId>(instances_.size());
      inst->index = i;
      inst->behaviour = behaviour[i];
      inst->clock_offset_ms =
          std::uniform_int_distribution<uint64_t>(0, scenario_.clock_skew_max_ms)(rng_);
      if (inst->honest()) {
        commits_.track(inst->id);
        receipts_.track(inst->id);
      }
      instances_.push_back(std::move(inst));
    }
  }
  std::ostringstream who;
  for (const auto& inst : instances_) {
    who << " " << inst->id << "=" << inst->index << ":" << behaviour_name(inst->behaviour);
  }
  trace("instances (id=index:behaviour):" + who.str());
}

std::vector<size_t> Cluster::random_groups(size_t groups_max, size_t* groups) {
  std::uniform_real_distribution<double> coin(0, 1);
  *groups = groups_max >= 3 && coin(rng_) < 0.3 ? 3 : 2;
  std::vector<size_t> group_of(instances_.size());
  for (auto& g : group_of) g = std::uniform_int_distribution<size_t>(0, *groups - 1)(rng_);
  // Twins are only interesting apart: each side then sees a different node.
  for (size_t a = 0; a < instances_.size(); ++a) {
    for (size_t b = a + 1; b < instances_.size(); ++b) {
      if (instances_[a]->index == instances_[b]->index && group_of[a] == group_of[b]) {
        group_of[b] = (group_of[a] + 1) % *groups;
      }
    }
  }
  return group_of;
}

std::vector<size_t> Cluster::twins_split_groups() {
  std::vector<size_t> group_of(instances_.size());
  std::vector<size_t> honest;
  std::map<NodeIndex, size_t> copies_seen;
  for (size_t i = 0; i < instances_.size(); ++i) {
    if (instances_[i]->behaviour == Behaviour::kTwins) {
      group_of[i] = copies_seen[instances_[i]->index]++;
    } else {
      honest.push_back(i);
    }
  }
  std::shuffle(honest.begin(), honest.end(), rng_);
  for (size_t k = 0; k < honest.size(); ++k) group_of[honest[k]] = k % 2;
  return group_of;
}

void Cluster::schedule_partitions() {
  std::vector<PartitionPhase> phases;
  int count = scenario_.partition_phases_max == 0
                  ? 0
                  : std::uniform_int_distribution<int>(1, scenario_.partition_phases_max)(rng_);
  std::vector<uint64_t> starts;
  for (int p = 0; p < count; ++p) {
    starts.push_back(
        std::uniform_int_distribution<uint64_t>(0, scenario_.fault_phase_ms - 1)(rng_));
  }
  std::sort(starts.begin(), starts.end());
  std::uniform_real_distribution<double> coin(0, 1);
  for (uint64_t from_ms : starts) {
    PartitionPhase phase{from_ms, {}};
    if (coin(rng_) < 0.2) {  // a short heal between partitions
      phases.push_back(phase);
      continue;
    }
    size_t groups = 2;
    std::vector<size_t> group_of = coin(rng_) < scenario_.twins_split
                                       ? twins_split_groups()
                                       : random_groups(instances_.size() >= 6 ? 3 : 2, &groups);
    phase.groups.resize(groups);
    for (size_t i = 0; i < instances_.size(); ++i) {
      phase.groups[group_of[i]].push_back(static_cast<InstanceId>(i));
    }
    std::ostringstream text;
    text << "partition at " << from_ms << "ms:";
    for (const auto& group : phase.groups) {
      text << " {";
      for (auto id : group) text << " " << id;
      text << " }";
    }
    trace(text.str());
    phases.push_back(std::move(phase));
  }
  phases.push_back(PartitionPhase{scenario_.fault_phase_ms, {}});
  network_->set_partitions(std::move(phases));
}

void Cluster::schedule_crashes() {
  if (scenario_.crashes_max == 0) return;
  int count = std::uniform_int_distribution<int>(0, scenario_.crashes_max)(rng_);
  for (int c = 0; c < count; ++c) {
    uint64_t at_ms = std::uniform_int_distribution<uint64_t>(0, scenario_.fault_phase_ms - 1)(rng_);
    InstanceId id = std::uniform_int_distribution<InstanceId>(
        0, static_cast<InstanceId>(instances_.size() - 1))(rng_);
    queue_.at(at_ms, [this, id] {
      Instance& inst = *instances_[id];
      if (!inst.up() || healed_) return;
      crash(inst);
      restart_later(inst);
    });
  }
}

void Cluster::restart_later(Instance& inst) {
  uint64_t down_ms = std::uniform_int_distribution<uint64_t>(1, scenario_.downtime_max_ms)(rng_);
  uint64_t token = inst.incarnation;
  queue_.after(down_ms, [this, &inst, token] {
    if (!inst.up() && inst.incarnation == token) start(inst);
  });
}

void Cluster::schedule_items() {
  uint64_t gap_ms =
      std::uniform_int_distribution<uint64_t>(1, scenario_.item_interval_max_ms)(rng_);
  queue_.after(gap_ms, [this] {
    size_t size = std::uniform_int_distribution<size_t>(kItemBytesMin, kItemBytesMax)(rng_);
    Bytes item = to_bytes("item-" + std::to_string(item_counter_++) + "-");
    while (item.size() < size) item.push_back(static_cast<uint8_t>(rng_()));
    InstanceId id = std::uniform_int_distribution<InstanceId>(
        0, static_cast<InstanceId>(instances_.size() - 1))(rng_);
    Instance& inst = *instances_[id];
    if (inst.up()) {  // a client of a down node gets an error and gives up
      add_item(inst, item);
      // The node gossips what it admits, as the real node does.
      for (const auto& other : instances_) {
        if (other->id != id) network_->send(id, other->id, Packet{Packet::Kind::kItem, item});
      }
    }
    schedule_items();
  });
}

void Cluster::schedule_ledger_sync(Instance& inst, uint64_t delay_ms) {
  queue_.after(delay_ms, [this, &inst] {
    inst.disk.ledger_synced = inst.disk.ledger.size();
    schedule_ledger_sync(inst, scenario_.ledger_sync_interval_ms);
  });
}

void Cluster::heal() {
  healed_ = true;
  network_->set_faults(scenario_.healed_faults);
  for (auto& inst : instances_) {
    if (!inst->up()) start(*inst);
  }
  for (auto& inst : instances_) inst->liveness_base = commits_.length(inst->id);
  trace("heal: network healed, every node up");
}

consensus::Config Cluster::make_config(const Instance& inst) const {
  consensus::Config config;
  config.genesis_id = genesis_.id();
  config.validators = validators_;
  config.self = inst.index;
  config.key = validator_key(inst.index);
  config.round_timeout_ms = scenario_.round_timeout_ms;
  config.round_timeout_max_ms = scenario_.round_timeout_max_ms;
  config.idle_proposal_ms = scenario_.idle_proposal_ms;
  config.block_items_max = scenario_.block_items_max;
  config.block_bytes_max = scenario_.block_bytes_max;
  return config;
}

consensus::Recovered Cluster::recover(const Instance& inst) {
  consensus::Recovered recovered = consensus::initial_recovered(genesis_);
  const Disk& disk = inst.disk;
  if (disk.safety) {
    auto safety = consensus::SafetyState::decode(*disk.safety);
    if (!safety.ok()) {
      fail("storage: durable SafetyState does not decode: " + safety.status().to_string());
      return recovered;
    }
    recovered.safety = std::move(safety).value();
  }
  if (disk.ledger_synced > 0) recovered.committed = disk.ledger[disk.ledger_synced - 1];
  for (const auto& [id, block] : disk.blocks) {
    if (block.round <= recovered.committed.round) continue;
    // Blocks come back through the codec, as from a real disk.
    auto decoded = consensus::decode_block(consensus::encode_block(block));
    if (!decoded.ok() || !(*decoded == block)) {
      fail("codec: block " + short_hex(id) + " does not survive encode_block/decode_block");
      return recovered;
    }
    recovered.pending.push_back(std::move(decoded).value());
  }
  return recovered;
}

void Cluster::start(Instance& inst) {
  consensus::Config config = make_config(inst);
  Status valid = consensus::validate_config(config);
  if (!valid.ok()) return fail("config refused: " + valid.to_string());
  consensus::Recovered recovered = recover(inst);
  if (!failure_.empty()) return;
  trace("start instance " + std::to_string(inst.id) + " committed round " +
        std::to_string(recovered.committed.round) + " pending " +
        std::to_string(recovered.pending.size()));
  Instance* self = &inst;
  inst.replica = std::make_unique<consensus::Replica>(
      std::move(config), std::move(recovered), inst.disk,
      [this, self](size_t max_items, size_t max_bytes,
                   const std::function<bool(const Hash256&)>& in_flight) {
        return take_payload(*self, max_items, max_bytes, in_flight);
      });
  handle_output(inst, inst.replica->start(local_now(inst)));
}

void Cluster::crash(Instance& inst) {
  ++stats_.crashes;
  ++inst.incarnation;
  inst.replica.reset();
  inst.mempool.clear();
  inst.mempool_index.clear();
  // Unsynced ledger writes are lost; what the checkers saw shrinks with them.
  Disk& disk = inst.disk;
  if (scenario_.bug_forget_safety_on_crash) disk.safety.reset();
  disk.drop_unsynced_ledger();
  inst.executed_ids.clear();
  size_t items = 0;
  for (const auto& block : disk.ledger) {
    items += block.payload.size();
    for (const auto& item : block.payload) inst.executed_ids.insert(crypto::sha256(item));
  }
  commits_.truncate(inst.id, disk.ledger_synced + 1);
  receipts_.truncate(inst.id, items);
  receipts_dirty_ = true;
  trace("crash instance " + std::to_string(inst.id) + ", ledger keeps " +
        std::to_string(disk.ledger_synced) + " blocks");
}

void Cluster::handle_output(Instance& inst, Output out) {
  // 1. Persist, synced, before anything leaves the node.
  if (out.safety) inst.disk.safety = out.safety->encode();
  for (auto& block : out.blocks) {
    Hash256 id = block.id();
    inst.disk.blocks.emplace(id, std::move(block));
  }
  // 2. Send. A crash may strike in the middle of sending.
  std::vector<Envelope> messages = misbehave(inst, std::move(out.messages));
  std::uniform_real_distribution<double> coin(0, 1);
  if (!healed_ && scenario_.crash_mid_output > 0 && coin(rng_) < scenario_.crash_mid_output) {
    size_t sent = std::uniform_int_distribution<size_t>(0, messages.size())(rng_);
    for (size_t i = 0; i < sent; ++i) send(inst, messages[i]);
    trace("crash mid-output after " + std::to_string(sent) + "/" + std::to_string(messages.size()) +
          " messages");
    crash(inst);
    restart_later(inst);
    return;
  }
  for (const auto& envelope : messages) send(inst, envelope);
  // 3. Execute commits in order.
  for (const auto& block : out.committed) {
    if (!failure_.empty()) return;
    execute(inst, block);
  }
  // 4. The latest timer wins.
  if (out.timer_ms) arm_timer(inst, *out.timer_ms);
}

void Cluster::arm_timer(Instance& inst, uint64_t timer_ms) {
  uint64_t generation = ++inst.timer_generation;
  uint64_t token = inst.incarnation;
  uint64_t at_ms = timer_ms > inst.clock_offset_ms ? timer_ms - inst.clock_offset_ms : 0;
  queue_.at(at_ms, [this, &inst, generation, token] {
    if (!inst.up() || inst.incarnation != token || inst.timer_generation != generation) return;
    mix(3);
    handle_output(inst, inst.replica->on_timer(local_now(inst)));
  });
}

void Cluster::send(Instance& inst, const Envelope& envelope) {
  if (envelope.to && *envelope.to >= scenario_.validators) {
    return fail("instance " + std::to_string(inst.id) + " addressed a message to index " +
                std::to_string(*envelope.to));
  }
  Packet packet{Packet::Kind::kConsensus, consensus::encode_message(envelope.message)};
  for (const auto& other : instances_) {
    if (other->id == inst.id || other->index == inst.index) continue;
    if (envelope.to && other->index != *envelope.to) continue;
    network_->send(inst.id, other->id, packet);
  }
}

void Cluster::execute(Instance& inst, const Block& block) {
  if (scenario_.bug_skip_second_commit && inst.id == 0 && commits_.length(0) == 2 &&
      !injected_bug_done_) {
    injected_bug_done_ = true;
    return;
  }
  Hash256 id = block.id();
  mix(id);
  Status status = commits_.on_commit(inst.id, CommitRecord{id, block.parent_id, block.round});
  if (!status.ok()) return fail(status.message());
  inst.disk.append_ledger(block, id);  // unsynced until the next ledger sync
  for (const auto& item : block.payload) {
    Hash256 item_id = crypto::sha256(item);
    if (!inst.executed_ids.insert(item_id).second) ++stats_.duplicate_items;
    auto it = inst.mempool_index.find(item_id);
    if (it != inst.mempool_index.end()) {
      inst.mempool.erase(it->second);
      inst.mempool_index.erase(it);
    }
    if (scenario_.bug_tamper_first_item && inst.id == 0 && receipts_.size(0) == 0) {
      Bytes changed = item;
      changed.push_back('!');
      receipts_.append(inst.id, changed);
    } else {
      receipts_.append(inst.id, item);
    }
    receipts_dirty_ = true;
  }
  if (inst.honest()) {
    trace("commit instance " + std::to_string(inst.id) + " height " +
          std::to_string(commits_.length(inst.id) - 1) + " round " + std::to_string(block.round) +
          " id " + short_hex(id) + " items " + std::to_string(block.payload.size()));
  }
}

void Cluster::add_item(Instance& inst, const Bytes& item) {
  Hash256 id = crypto::sha256(item);
  if (inst.executed_ids.count(id) || inst.mempool_index.count(id)) return;
  if (inst.mempool.size() >= kMempoolItemsMax) return;
  inst.mempool.emplace_back(id, item);
  inst.mempool_index.emplace(id, std::prev(inst.mempool.end()));
  // On every new item, not only when the mempool was empty: items stay in it
  // until executed, so a leader whose items are all in flight is waiting too.
  handle_output(inst, inst.replica->on_payload_available(local_now(inst)));
}

std::vector<Bytes> Cluster::take_payload(Instance& inst, size_t max_items, size_t max_bytes,
                                         const std::function<bool(const Hash256&)>& in_flight) {
  std::vector<Bytes> payload;
  size_t bytes = 0;
  for (const auto& [id, item] : inst.mempool) {
    if (payload.size() >= max_items) break;
    if (bytes + item.size() > max_bytes || in_flight(id)) continue;
    bytes += item.size();
    payload.push_back(item);
  }
  return payload;
}

void Cluster::deliver(InstanceId from, InstanceId to, const Packet& packet) {
  Instance& target = *instances_[to];
  mix(from * 1000003ull + to);
  if (!target.up()) return;
  if (packet.kind == Packet::Kind::kItem) {
    // Gossip is not signed here; corrupted gossip is just a different item.
    add_item(target, packet.bytes);
    return;
  }
  deliver_consensus(*instances_[from], target, packet);
}

void Cluster::deliver_consensus(Instance& from, Instance& to, const Packet& packet) {
  auto message = consensus::decode_message(packet.bytes);
  if (!message.ok()) {
    if (packet.corrupted) {
      ++stats_.decode_refused;
      return;
    }
    return fail("codec: an intact message from instance " + std::to_string(from.id) +
                " does not decode: " + message.status().to_string());
  }
  if (packet.corrupted) {
    ++stats_.corrupt_decoded;
  } else if (consensus::encode_message(*message) != packet.bytes) {
    return fail("codec: decode then encode changed the bytes of a " +
                std::string(consensus::message_name(*message)));
  }
  trace("deliver " + describe(*message) + " " + std::to_string(from.id) + "->" +
        std::to_string(to.id) + (packet.corrupted ? " (corrupted)" : ""));
  if (to.behaviour == Behaviour::kForger) tamper_on_receive(to, *message);
  handle_output(to, to.replica->on_message(from.index, std::move(message).value(), local_now(to)));
}

std::vector<Envelope> Cluster::misbehave(Instance& inst, std::vector<Envelope> messages) {
  if (inst.behaviour == Behaviour::kHonest || inst.behaviour == Behaviour::kTwins) {
    return messages;
  }
  std::vector<Envelope> out;
  for (auto& envelope : messages) {
    bool is_vote = std::holds_alternative<consensus::Vote>(envelope.message) ||
                   std::holds_alternative<consensus::Timeout>(envelope.message);
    if (inst.behaviour == Behaviour::kWithholder && is_vote) {
      ++stats_.withheld_messages;
      continue;
    }
    auto* proposal = std::get_if<consensus::Proposal>(&envelope.message);
    bool own_proposal = proposal != nullptr && !envelope.to && proposal->block.author == inst.index;
    if ((inst.behaviour == Behaviour::kEquivocator || inst.behaviour == Behaviour::kForger) &&
        own_proposal) {
      equivocate(inst, proposal->block, out);
      continue;
    }
    out.push_back(std::move(envelope));
  }
  return out;
}

void Cluster::equivocate(Instance& inst, const Block& block, std::vector<Envelope>& out) {
  const crypto::PrivateKey& key = validator_key(inst.index);
  Block other = block;
  other.payload.push_back(
      to_bytes("equivocation-" + std::to_string(block.round) + "-" + std::to_string(inst.index)));
  consensus::sign_block(other, key);
  std::vector<NodeIndex> others = other_indexes(inst.index);
  std::shuffle(others.begin(), others.end(), rng_);
  for (size_t i = 0; i < others.size(); ++i) {
    const Block& chosen = i < others.size() / 2 ? block : other;
    out.push_back(Envelope{others[i], consensus::Proposal{chosen}});
  }
  ++stats_.equivocations;
  if (inst.behaviour != Behaviour::kForger) return;
  // Votes "from" every other validator for the conflicting block, signed
  // with the forger's own key: a replica that checks signatures against the
  // sender instead of the voter would count them.
  Hash256 other_id = other.id();
  NodeIndex next_leader = inst.replica->leader(block.round + 1);
  for (NodeIndex voter : other_indexes(inst.index)) {
    consensus::Vote vote = consensus::make_vote(other_id, block.round, inst.index, key);
    vote.voter = voter;
    out.push_back(Envelope{next_leader, vote});
    ++stats_.forged_messages;
  }
}

void Cluster::tamper_on_receive(Instance& inst, const Message& message) {
  auto* proposal = std::get_if<consensus::Proposal>(&message);
  if (proposal == nullptr || proposal->block.author == inst.index ||
      proposal->block.round <= inst.last_tampered_round) {
    return;
  }
  inst.last_tampered_round = proposal->block.round;
  // The honest leader's block with one more item and the old signature: it
  // must fail verify_block everywhere.
  Block tampered = proposal->block;
  tampered.payload.push_back(to_bytes("tampered-" + std::to_string(tampered.round)));
  Packet packet{Packet::Kind::kConsensus, consensus::encode_message(consensus::Proposal{tampered})};
  for (const auto& other : instances_) {
    if (other->index != inst.index) network_->send(inst.id, other->id, packet);
  }
  ++stats_.forged_messages;
}

void Cluster::check_invariants() {
  Status status = commits_.check_prefixes();
  if (!status.ok()) return fail(status.message());
  if (receipts_dirty_) {
    receipts_dirty_ = false;
    status = receipts_.check(check_rng_);
    if (!status.ok()) return fail(status.message());
  }
}

bool Cluster::liveness_met() const {
  for (const auto& inst : instances_) {
    if (!inst->honest()) continue;
    if (commits_.length(inst->id) < inst->liveness_base + scenario_.liveness_blocks) return false;
  }
  return true;
}

std::string Cluster::liveness_report() const {
  std::ostringstream text;
  for (const auto& inst : instances_) {
    text << "\n  instance " << inst->id << " (index " << inst->index << ", "
         << behaviour_name(inst->behaviour) << "): height "
         << (commits_.length(inst->id) == 0 ? 0 : commits_.length(inst->id) - 1) << " (at heal "
         << (inst->liveness_base == 0 ? 0 : inst->liveness_base - 1) << ")";
    if (inst->up()) {
      text << ", round " << inst->replica->round() << ", committed round "
           << inst->replica->committed_block().round << ", pending "
           << inst->replica->pending_blocks() << ", mempool " << inst->mempool.size();
    } else {
      text << ", down";
    }
  }
  return text.str();
}

void Cluster::fail(const std::string& reason) {
  if (!failure_.empty()) return;  // the first violation is the interesting one
  failure_ = "at t=" + std::to_string(queue_.now_ms()) + "ms: " + reason;
}

void Cluster::trace(const std::string& text) {
  if (trace_.size() >= kTraceEventsMax) trace_.pop_front();
  trace_.push_back("t=" + std::to_string(queue_.now_ms()) + " " + text);
  if (print_trace_) std::cerr << trace_.back() << "\n";
}

RunResult Cluster::run() {
  build_instances();
  network_ = std::make_unique<Network>(
      queue_, rng_, instances_.size(),
      [this](InstanceId from, InstanceId to, const Packet& packet) { deliver(from, to, packet); });
  network_->set_faults(scenario_.faults);
  schedule_partitions();
  schedule_crashes();
  queue_.at(scenario_.fault_phase_ms, [this] { heal(); });
  for (auto& inst : instances_) {
    start(*inst);
    // Nodes sync their ledgers out of step with each other.
    schedule_ledger_sync(
        *inst, std::uniform_int_distribution<uint64_t>(1, scenario_.ledger_sync_interval_ms)(rng_));
  }
  schedule_items();

  uint64_t deadline_ms = scenario_.fault_phase_ms + scenario_.liveness_window_ms;
  bool live = false;
  while (failure_.empty() && !queue_.empty()) {
    if (healed_ && liveness_met()) {
      live = true;
      break;
    }
    if (queue_.next_time_ms() > deadline_ms) {
      fail("LIVENESS: honest replicas did not each commit " +
           std::to_string(scenario_.liveness_blocks) + " blocks within " +
           std::to_string(scenario_.liveness_window_ms) + "ms after the heal" + liveness_report());
      break;
    }
    if (queue_.executed() >= kEventsPerRunMax) {
      fail("event budget exhausted (a livelock?)" + liveness_report());
      break;
    }
    queue_.run_one();
    mix(queue_.now_ms());
    check_invariants();
  }
  if (failure_.empty() && !live) fail("event queue ran dry");
  if (failure_.empty()) check_invariants();  // once more, over the final state

  RunResult result;
  result.ok = failure_.empty();
  stats_.events = queue_.executed();
  stats_.end_ms = queue_.now_ms();
  stats_.network = network_->stats();
  stats_.heights_min = UINT64_MAX;
  for (const auto& inst : instances_) {
    if (!inst->honest()) continue;
    uint64_t height = commits_.length(inst->id) - 1;
    stats_.heights_min = std::min(stats_.heights_min, height);
    stats_.heights_max = std::max(stats_.heights_max, height);
    stats_.items_executed_max =
        std::max<uint64_t>(stats_.items_executed_max, receipts_.size(inst->id));
  }
  result.stats = stats_;
  result.digest = digest_;
  if (!result.ok) {
    std::ostringstream text;
    text << failure_ << "\nlast events:";
    for (const auto& line : trace_) text << "\n  " << line;
    result.failure = text.str();
  }
  return result;
}

}  // namespace

RunResult run_scenario(const Scenario& scenario, uint64_t seed) {
  Cluster cluster(scenario, seed);
  return cluster.run();
}

}  // namespace custos::sim
