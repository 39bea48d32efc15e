#include "consensus/replica.h"

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <unordered_set>

#include "consensus/certs.h"
#include "core/quorum.h"
#include "crypto/hash.h"

namespace custos::consensus {

namespace {

// Backoff doubles the round timeout per consecutive timeout; past this many
// doublings the cap has long been reached (and the shift stays defined).
constexpr uint32_t kBackoffDoublingsMax = 30;

}  // namespace

struct Replica::State {
  State(Config c, Recovered r, const BlockReader& reader, PayloadSource source)
      : config(std::move(c)),
        store(reader),
        payload(std::move(source)),
        safety(std::move(r.safety)),
        committed(std::move(r.committed)),
        committed_id(committed.id()) {
    validators.keys = &config.validators;
    validators.genesis_id = config.genesis_id;
    restore_pending(std::move(r.pending));
  }

  Config config;
  Validators validators;
  const BlockReader& store;
  PayloadSource payload;
  SafetyRules safety;
  Block committed;
  Hash256 committed_id;

  // Uncommitted blocks that chain to `committed`, by id.
  std::map<Hash256, Block> tree;
  // Item ids per block id (see item_ids()); entries leave with their block.
  mutable std::unordered_map<Hash256, std::vector<Hash256>, Hash256Hash> item_ids_memo;
  std::vector<Hash256> committed_this_event;  // ids of out->committed, in order
  // Verified or hash-linked blocks whose ancestors are not here yet, by id,
  // with an index from parent id to children.
  std::map<Hash256, Block> orphans;
  std::multimap<Hash256, Hash256> orphan_children;
  size_t orphan_bytes = 0;
  std::set<Hash256> parked_proposals;  // orphans that came as proposals (bounded separately)

  // First verified proposal seen per uncommitted round.
  std::map<uint64_t, Hash256> proposal_of_round;

  // Pacemaker.
  uint64_t entered_round = 0;
  uint64_t round_start_ms = 0;
  std::vector<bool> unreachable;  // by NodeIndex, from on_unreachable
  uint64_t round_deadline_ms = 0;
  uint32_t consecutive_timeouts = 0;
  std::optional<Timeout> sent_timeout;  // ours for the current round, re-sent on each expiry
  uint64_t proposed_round = 0;
  bool skip_idle_wait = false;  // set by start(), cleared on entering a round

  // Aggregation: votes for rounds this node leads next, timeouts for any round.
  std::map<uint64_t, std::map<Hash256, std::map<NodeIndex, Bytes>>> votes;
  std::map<uint64_t, std::set<NodeIndex>> voters;  // one vote per voter and round
  std::map<uint64_t, std::map<NodeIndex, TimeoutSignature>> timeouts;
  std::map<uint64_t, QuorumCert> timeout_high_qc;  // highest QC carried by a round's timeouts

  // Block fetching: one request outstanding at a time.
  struct Fetch {
    Hash256 id{};
    NodeIndex peer = 0;
    uint64_t deadline_ms = 0;
  };
  std::optional<Fetch> fetch;
  std::optional<NodeIndex> sync_peer;  // last peer that answered with blocks

  // The Output being built and the local messages waiting to be handled.
  Output* out = nullptr;
  uint64_t now_ms = 0;
  bool safety_dirty = false;
  std::deque<Message> local;

  size_t n() const { return config.validators.size(); }
  NodeIndex leader(uint64_t round) const { return static_cast<NodeIndex>(round % n()); }
  uint64_t round() const { return safety.current_round(); }

  // --- Block lookup ---

  const Block* find(const Hash256& id) const {
    if (id == committed_id) return &committed;
    auto it = tree.find(id);
    return it == tree.end() ? nullptr : &it->second;
  }

  // ---------------------------------------------------------------------------
  // Event plumbing

  void begin(Output& o, uint64_t now) {
    out = &o;
    now_ms = now;
    safety_dirty = false;
    committed_this_event.clear();
    std::erase_if(item_ids_memo, [&](const auto& kv) { return !tree.count(kv.first); });
  }

  void finish() {
    drain_local();
    if (safety_dirty) out->safety = safety.state();
    out->committed_ids = committed_this_event;  // the node need not hash each block again
    out->timer_ms = next_timer();
    out = nullptr;
  }

  // Broadcast to the others and handle it here too, as every validator does.
  void broadcast(Message m) {
    out->messages.push_back(Envelope{std::nullopt, m});
    local.push_back(std::move(m));
  }

  void send(NodeIndex to, Message m) {
    if (to == config.self) {
      local.push_back(std::move(m));
    } else {
      out->messages.push_back(Envelope{to, std::move(m)});
    }
  }

  void drain_local() {
    while (!local.empty()) {
      Message m = std::move(local.front());
      local.pop_front();
      handle(config.self, std::move(m));
    }
  }

  void handle(NodeIndex from, Message m) {
    if (from >= n()) return;
    std::visit([&](auto& msg) { on(from, msg); }, m);
  }

  // ---------------------------------------------------------------------------
  // Recovery

  void restore_pending(std::vector<Block> pending) {
    std::sort(pending.begin(), pending.end(),
              [](const Block& a, const Block& b) { return a.round < b.round; });
    for (Block& b : pending) {
      if (b.round <= committed.round) continue;
      const Block* parent = find(b.parent_id);
      if (!parent || parent->round >= b.round) continue;
      if (b.author == config.self) proposed_round = std::max(proposed_round, b.round);
      Hash256 id = b.id();
      tree.emplace(id, std::move(b));
    }
  }

  // ---------------------------------------------------------------------------
  // Pacemaker

  uint64_t timeout_duration_ms() const {
    uint32_t doublings = std::min(consecutive_timeouts, kBackoffDoublingsMax);
    uint64_t base = config.round_timeout_ms;
    uint64_t d = base > (config.round_timeout_max_ms >> doublings) ? config.round_timeout_max_ms
                                                                   : base << doublings;
    return std::min(d, config.round_timeout_max_ms);
  }

  // Called after anything that may have raised high_qc / high_tc.
  void maybe_enter_round(bool by_qc) {
    uint64_t r = round();
    if (r <= entered_round) return;
    consecutive_timeouts = by_qc ? 0 : consecutive_timeouts + 1;
    entered_round = r;
    round_start_ms = now_ms;
    round_deadline_ms = now_ms + timeout_duration_ms();
    sent_timeout.reset();
    skip_idle_wait = false;
    prune_aggregates(r);
    time_out_unreachable_leader();
    try_propose();
  }

  // A round this node knows cannot produce a certified block ends now (once
  // per round) rather than at its deadline: its leader is unreachable (no
  // proposal will come), or the next leader is (the votes that would
  // certify this round's block go to it).
  //
  // The leader itself proposes first (propose() calls this again): were its
  // view wrong, giving up would cost the others a whole round timeout (its
  // timeout alone forms no TC); were it right, the others' immediate
  // timeouts (f + 1 of them) make it join at once anyway.
  void time_out_unreachable_leader() {
    const uint64_t r = round();
    if (!is_unreachable(leader(r)) && !is_unreachable(leader(r + 1))) return;
    if (sent_timeout && sent_timeout->round == r) return;
    if (leader(r) == config.self && proposed_round < r) return;
    local_timeout();
  }

  bool is_unreachable(NodeIndex i) const {
    return i != config.self && i < unreachable.size() && unreachable[i];
  }

  void prune_aggregates(uint64_t r) {
    // Votes of round r-1 still make the QC this node (leader of r) needs.
    uint64_t keep_from = r >= 1 ? r - 1 : 0;
    votes.erase(votes.begin(), votes.lower_bound(keep_from));
    voters.erase(voters.begin(), voters.lower_bound(keep_from));
    timeouts.erase(timeouts.begin(), timeouts.lower_bound(r));
    timeout_high_qc.erase(timeout_high_qc.begin(), timeout_high_qc.lower_bound(r));
  }

  void local_timeout() {
    uint64_t r = round();
    if (sent_timeout && sent_timeout->round == r) {
      out->messages.push_back(Envelope{std::nullopt, *sent_timeout});  // re-send: it may be lost
    } else {
      if (!safety.record_timeout(r).ok()) return;
      safety_dirty = true;
      const auto& st = safety.state();
      std::optional<TimeoutCert> last_tc;
      if (st.high_tc && st.high_tc->round + 1 == r) last_tc = st.high_tc;
      sent_timeout = make_timeout(r, st.high_qc, last_tc, config.self, config.key);
      broadcast(*sent_timeout);
    }
    round_deadline_ms = now_ms + timeout_duration_ms();
  }

  std::optional<uint64_t> next_timer() const {
    uint64_t t = round_deadline_ms;
    if (waiting_to_propose()) t = std::min(t, round_start_ms + config.idle_proposal_ms);
    if (fetch) t = std::min(t, fetch->deadline_ms);
    return t;
  }

  void on_timer() {
    if (now_ms >= round_deadline_ms) local_timeout();
    if (fetch && now_ms >= fetch->deadline_ms) retry_fetch();
    try_propose();
  }

  // ---------------------------------------------------------------------------
  // Proposing

  bool may_propose() const {
    uint64_t r = round();
    const auto& st = safety.state();
    return leader(r) == config.self && proposed_round < r && st.last_voted_round < r &&
           st.highest_timeout_round < r;
  }

  bool waiting_to_propose() const { return may_propose() && find(safety.state().high_qc.block_id); }

  // Item ids in the uncommitted chain ending at `tip_id`, and in the blocks
  // committed by this very event (the node has not executed them yet, so
  // its mempool still holds their items).
  std::unordered_set<Hash256, Hash256Hash> in_flight_ids(const Hash256& tip_id, bool* any) const {
    std::unordered_set<Hash256, Hash256Hash> ids;
    for (size_t i = 0; i < out->committed.size() && i < committed_this_event.size(); ++i) {
      for (const Hash256& h : item_ids(committed_this_event[i], out->committed[i])) ids.insert(h);
    }
    *any = false;
    for (Hash256 id = tip_id;;) {
      const Block* b = find(id);
      if (!b || b == &committed) break;
      for (const Hash256& h : item_ids(id, *b)) ids.insert(h);
      *any = *any || !b->payload.empty();
      id = b->parent_id;
    }
    return ids;
  }

  // SHA-256 of each item of a block, computed once per block: a leader asks
  // for the items in flight at every proposal, and uncommitted blocks hold
  // up to thousands of items each.
  const std::vector<Hash256>& item_ids(const Hash256& block_id, const Block& b) const {
    auto it = item_ids_memo.find(block_id);
    if (it != item_ids_memo.end()) return it->second;
    std::vector<Hash256> v;
    v.reserve(b.payload.size());
    for (const Bytes& item : b.payload) v.push_back(crypto::sha256(item));
    return item_ids_memo.emplace(block_id, std::move(v)).first->second;
  }

  void try_propose() {
    if (!may_propose()) return;
    const QuorumCert& qc = safety.state().high_qc;
    const Block* parent = find(qc.block_id);
    if (!parent) {
      sync_toward_qc(qc, leader(qc.round + 1));
      return;
    }
    bool uncommitted_payload = false;
    auto in_flight = in_flight_ids(qc.block_id, &uncommitted_payload);
    // This proposal's QC is what lets the others commit the grandparent
    // (which this node may have just committed): do not make it wait either.
    const Block* grandparent = find(parent->parent_id);
    uncommitted_payload = uncommitted_payload || (grandparent && !grandparent->payload.empty());
    size_t items_max = std::min(config.block_items_max, kBlockItemsMax);
    size_t bytes_max = std::min(config.block_bytes_max, kBlockBytesMax);
    std::vector<Bytes> items =
        payload ? payload(items_max, bytes_max,
                          [&](const Hash256& id) { return in_flight.count(id) > 0; })
                : std::vector<Bytes>{};
    trim_payload(items, items_max, bytes_max);
    bool idle_over = skip_idle_wait || now_ms >= round_start_ms + config.idle_proposal_ms;
    if (items.empty() && !uncommitted_payload && !idle_over) return;
    propose(*parent, std::move(items));
  }

  // The mempool is outside code: never let it push a block past the limits.
  static void trim_payload(std::vector<Bytes>& items, size_t items_max, size_t bytes_max) {
    size_t bytes = 0, keep = 0;
    for (; keep < items.size() && keep < items_max; ++keep) {
      if (items[keep].empty() || bytes + items[keep].size() > bytes_max) break;
      bytes += items[keep].size();
    }
    items.resize(keep);
  }

  void propose(const Block& parent, std::vector<Bytes> items) {
    uint64_t r = round();
    const auto& st = safety.state();
    Block b;
    b.round = r;
    b.parent_id = st.high_qc.block_id;
    b.qc = st.high_qc;
    if (st.high_qc.round + 1 != r) b.tc = st.high_tc;  // entered r by a TC for r - 1
    b.author = config.self;
    b.time_ms = std::max(now_ms, parent.time_ms);
    b.payload = std::move(items);
    sign_block(b, config.key);
    proposed_round = r;
    // The leader entered r when it formed the QC, up to idle_proposal_ms
    // before the others (who enter r on this proposal): time its round
    // from here, like theirs, or the next leader's idle wait would add up
    // with its own and time it out in a healthy network.
    round_deadline_ms = now_ms + timeout_duration_ms();
    out->blocks.push_back(b);
    broadcast(Proposal{std::move(b)});
    time_out_unreachable_leader();
  }

  // ---------------------------------------------------------------------------
  // Certificates and commits

  void process_qc(const QuorumCert& qc) {
    if (safety.observe_qc(qc)) safety_dirty = true;
    try_commit(qc);
    maybe_enter_round(/*by_qc=*/true);
  }

  void process_tc(const TimeoutCert& tc) {
    if (safety.observe_qc(tc.high_qc)) safety_dirty = true;
    try_commit(tc.high_qc);
    if (safety.observe_tc(tc)) safety_dirty = true;
    // A TC for round r-1 moves us to r; a QC may have moved us further.
    maybe_enter_round(/*by_qc=*/tc.round + 1 < round());
  }

  // 2-chain rule: a QC on B' whose parent B has round B'.round - 1 commits B.
  void try_commit(const QuorumCert& qc) {
    auto child = tree.find(qc.block_id);
    if (child == tree.end()) return;
    auto parent = tree.find(child->second.parent_id);
    if (parent == tree.end()) return;  // already committed, or unknown
    if (child->second.round != parent->second.round + 1) return;
    commit(Hash256(parent->first));  // a copy: commit() erases the entry
  }

  void commit(Hash256 id) {
    std::vector<Hash256> chain;
    for (auto it = tree.find(id); it != tree.end(); it = tree.find(it->second.parent_id)) {
      chain.push_back(it->first);
    }
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      auto node = tree.find(*it);
      out->committed.push_back(node->second);
      committed_this_event.push_back(*it);
      committed = std::move(node->second);
      committed_id = *it;
      tree.erase(node);
    }
    prune_tree();
    prune_orphans();
    proposal_of_round.erase(proposal_of_round.begin(),
                            proposal_of_round.upper_bound(committed.round));
  }

  // Keep only the descendants of the committed block.
  void prune_tree() {
    std::vector<std::pair<uint64_t, Hash256>> by_round;
    for (const auto& [id, b] : tree) by_round.emplace_back(b.round, id);
    std::sort(by_round.begin(), by_round.end());
    std::set<Hash256> keep = {committed_id};
    for (const auto& [r, id] : by_round) {
      if (keep.count(tree.at(id).parent_id)) keep.insert(id);
    }
    std::erase_if(tree, [&](const auto& kv) { return !keep.count(kv.first); });
  }

  // When the tree is full, drop blocks that can no longer be committed:
  // below the highest QC and not its ancestors.
  void make_room() {
    const Block* tip = find(safety.state().high_qc.block_id);
    if (!tip) return;
    std::set<Hash256> ancestors;
    for (const Block* b = tip; b && b != &committed; b = find(b->parent_id)) {
      ancestors.insert(b == tip ? safety.state().high_qc.block_id : b->id());
    }
    uint64_t qc_round = safety.state().high_qc.round;
    std::erase_if(tree, [&](const auto& kv) {
      return kv.second.round < qc_round && !ancestors.count(kv.first);
    });
    prune_tree();
  }

  // ---------------------------------------------------------------------------
  // Block tree insertion (and linking of orphans)

  // `b` is verified (or hash-linked to something verified). Inserts it when
  // it chains to the tree, else parks it as an orphan.
  void accept_block(const Hash256& id, Block b, bool from_proposal, NodeIndex from) {
    if (b.round <= committed.round || find(id) || orphans.count(id)) return;
    const Block* parent = find(b.parent_id);
    if (parent) {
      insert_linked(id, std::move(b));
      return;
    }
    park_orphan(id, std::move(b), from_proposal);
    sync_toward(id, from);
  }

  void insert_linked(const Hash256& id, Block b) {
    std::deque<std::pair<Hash256, Block>> work;
    work.emplace_back(id, std::move(b));
    while (!work.empty()) {
      auto [bid, blk] = std::move(work.front());
      work.pop_front();
      const Block* parent = find(blk.parent_id);
      if (!parent || parent->round >= blk.round || parent->round != blk.qc.round) continue;
      if (tree.size() >= kPendingBlocksMax) make_room();
      if (tree.size() >= kPendingBlocksMax) continue;
      QuorumCert qc = blk.qc;
      std::optional<TimeoutCert> tc = blk.tc;
      tree.emplace(bid, std::move(blk));
      // A fetched block's certificates are authentic (hash-linked to a
      // verified one). Observing them before any vote keeps the invariant
      // the safety argument needs: a voter has seen its block's QC.
      process_qc(qc);
      if (tc) process_tc(*tc);
      try_commit(safety.state().high_qc);
      if (const Block* inserted = find(bid)) try_vote(bid, *inserted);
      for (auto& child : take_orphan_children(bid)) work.push_back(std::move(child));
    }
    try_propose();
  }

  void park_orphan(const Hash256& id, Block b, bool from_proposal) {
    if (from_proposal && parked_proposals.size() >= kBufferedMessagesMax) return;
    if (orphans.size() >= kSyncBlocksMax || orphan_bytes + b.payload_bytes() > kSyncBytesMax) {
      return;
    }
    orphan_bytes += b.payload_bytes();
    if (from_proposal) parked_proposals.insert(id);
    orphan_children.emplace(b.parent_id, id);
    orphans.emplace(id, std::move(b));
  }

  std::vector<std::pair<Hash256, Block>> take_orphan_children(const Hash256& parent_id) {
    std::vector<std::pair<Hash256, Block>> children;
    auto [lo, hi] = orphan_children.equal_range(parent_id);
    for (auto it = lo; it != hi; ++it) {
      auto o = orphans.find(it->second);
      if (o == orphans.end()) continue;
      Hash256 id = o->first;
      children.emplace_back(id, drop_orphan(o));
    }
    orphan_children.erase(lo, hi);
    return children;
  }

  void prune_orphans() {
    for (auto it = orphans.begin(); it != orphans.end();) {
      auto next = std::next(it);
      if (it->second.round <= committed.round) drop_orphan(it);
      it = next;
    }
    std::erase_if(orphan_children, [&](const auto& kv) { return !orphans.count(kv.second); });
  }

  // Removes one orphan with its accounting and returns its block.
  Block drop_orphan(std::map<Hash256, Block>::iterator o) {
    orphan_bytes -= o->second.payload_bytes();
    parked_proposals.erase(o->first);
    Block b = std::move(o->second);
    orphans.erase(o);
    return b;
  }

  // ---------------------------------------------------------------------------
  // Fetching missing ancestors

  // The first block missing below `id`: id itself, or the parent of the
  // lowest orphan in its chain. nullopt when the chain is complete.
  std::optional<Hash256> missing_below(Hash256 id) const {
    for (size_t steps = 0; steps <= orphans.size(); ++steps) {
      if (find(id)) return std::nullopt;
      auto o = orphans.find(id);
      if (o == orphans.end()) return id;
      // Its parent is at or below the committed round yet is not the
      // committed block: a dead fork that nobody needs to serve.
      if (o->second.qc.round <= committed.round) return std::nullopt;
      id = o->second.parent_id;
    }
    return std::nullopt;  // a cycle cannot happen with SHA-256; stop anyway
  }

  // Only blocks above the committed round are worth fetching: older ones
  // are committed (and may be pruned everywhere, like genesis) or dead.
  void sync_toward_qc(const QuorumCert& qc, NodeIndex peer) {
    if (qc.round > committed.round) sync_toward(qc.block_id, peer);
  }

  // What the replica misses below its highest QC, if anything.
  std::optional<Hash256> needed_block() const {
    const QuorumCert& qc = safety.state().high_qc;
    if (qc.round <= committed.round) return std::nullopt;
    return missing_below(qc.block_id);
  }

  void sync_toward(const Hash256& id, NodeIndex peer) {
    std::optional<Hash256> missing = missing_below(id);
    if (!missing) return;
    if (fetch && fetch->id == *missing) return;
    if (fetch && now_ms < fetch->deadline_ms) return;  // one at a time; resumes on reply
    request(*missing, peer == config.self ? next_peer(peer) : peer);
  }

  void request(const Hash256& id, NodeIndex peer) {
    fetch = Fetch{id, peer, now_ms + config.round_timeout_ms};
    send(peer, BlockRequest{id, static_cast<uint32_t>(kBlocksPerResponseMax)});
  }

  NodeIndex next_peer(NodeIndex peer) const {
    NodeIndex p = static_cast<NodeIndex>((peer + 1) % n());
    if (p == config.self) p = static_cast<NodeIndex>((p + 1) % n());
    return p;
  }

  void retry_fetch() {
    if (!fetch) return;
    NodeIndex peer = next_peer(fetch->peer);
    fetch.reset();
    // Ask the next peer for what is missing now, not necessarily what was
    // asked before: that may have arrived, or stopped mattering.
    std::optional<Hash256> need = needed_block();
    if (need && n() > 1) request(*need, peer);
  }

  // After progress, keep walking down toward the highest QC's block.
  void resume_sync() {
    const QuorumCert& qc = safety.state().high_qc;
    NodeIndex peer = fetch ? fetch->peer : sync_peer.value_or(leader(qc.round + 1));
    sync_toward_qc(qc, peer);
  }

  // ---------------------------------------------------------------------------
  // Voting

  void try_vote(const Hash256& id, const Block& b) {
    if (b.round != round()) return;
    const Block* parent = find(b.parent_id);
    if (!parent || b.time_ms < parent->time_ms) return;
    if (b.time_ms > now_ms + kClockSkewMaxMs) return;
    if (!safety.record_vote(b).ok()) return;
    safety_dirty = true;
    if (out->blocks.empty() || out->blocks.back().round != b.round ||
        out->blocks.back().author != b.author) {
      out->blocks.push_back(b);
    }
    send(leader(b.round + 1), make_vote(id, b.round, config.self, config.key));
  }

  // ---------------------------------------------------------------------------
  // Message handlers

  void on(NodeIndex from, Proposal& p) {
    Block& b = p.block;
    if (b.round + 1 < round() || b.round <= committed.round) return;  // stale
    if (b.author != leader(b.round)) return;
    Hash256 id = b.id();
    if (const Block* known = find(id)) {
      try_vote(id, *known);  // e.g. fetched before its proposal arrived
      return;
    }
    if (!verify_block(b, validators).ok()) return;
    process_qc(b.qc);
    if (b.tc) process_tc(*b.tc);
    // One proposal per round enters memory; an equivocating leader's other
    // blocks arrive, if ever certified, through block requests instead.
    auto [first, fresh] = proposal_of_round.emplace(b.round, id);
    if (!fresh && first->second != id) return;
    accept_block(id, std::move(b), /*from_proposal=*/true, from);
  }

  void on(NodeIndex, Vote& v) {
    uint64_t r = round();
    if (v.round + 1 < r || v.round > r + kFutureRoundsMax) return;
    if (leader(v.round + 1) != config.self) return;  // votes go to the next leader
    if (voters[v.round].count(v.voter)) return;      // one vote per voter and round
    if (!verify_vote(v, validators).ok()) return;
    voters[v.round].insert(v.voter);
    auto& sigs = votes[v.round][v.block_id];
    sigs.emplace(v.voter, std::move(v.signature));
    if (sigs.size() != quorum_size(n())) return;
    QuorumCert qc;
    qc.block_id = v.block_id;
    qc.round = v.round;
    qc.signatures.assign(sigs.begin(), sigs.end());  // std::map: ascending index
    process_qc(qc);
    sync_toward_qc(qc, leader(qc.round));
  }

  void on(NodeIndex from, Timeout& t) {
    uint64_t r = round();
    if (t.round + kFutureRoundsMax < r || t.round > r + kFutureRoundsMax) return;
    auto& round_timeouts = timeouts[t.round];
    if (round_timeouts.count(t.voter)) return;
    if (!verify_timeout(t, validators).ok()) {
      if (round_timeouts.empty()) timeouts.erase(t.round);
      return;
    }
    process_qc(t.high_qc);
    if (t.last_tc) process_tc(*t.last_tc);
    sync_toward_qc(t.high_qc, from);
    if (t.round < round()) return;  // the certificates moved us past it
    collect_timeout(t);
  }

  void collect_timeout(const Timeout& t) {
    auto& round_timeouts = timeouts[t.round];
    round_timeouts.emplace(t.voter, TimeoutSignature{t.voter, t.high_qc.round, t.signature});
    auto best = timeout_high_qc.find(t.round);
    if (best == timeout_high_qc.end() || best->second.round < t.high_qc.round) {
      timeout_high_qc[t.round] = t.high_qc;
    }
    // f + 1 timeouts include an honest one: join so the round ends quickly.
    if (t.round == round() && round_timeouts.size() >= fault_tolerance(n()) + 1 &&
        !(sent_timeout && sent_timeout->round == t.round)) {
      local_timeout();
    }
    if (round_timeouts.size() != quorum_size(n())) return;
    TimeoutCert tc;
    tc.round = t.round;
    for (const auto& [node, sig] : round_timeouts) tc.signatures.push_back(sig);
    tc.high_qc = timeout_high_qc[t.round];
    process_tc(tc);
  }

  void on(NodeIndex from, BlockRequest& req) {
    if (req.count == 0 || req.count > kBlocksPerResponseMax || from == config.self) return;
    BlockResponse resp;
    size_t bytes = 0;
    Hash256 id = req.block_id;
    while (resp.blocks.size() < req.count) {
      std::optional<Block> b = lookup(id);
      if (!b) break;
      bytes += b->payload_bytes();
      if (!resp.blocks.empty() && bytes > kResponsePayloadBytesMax) break;
      id = b->parent_id;
      bool genesis = b->round == 0;
      resp.blocks.push_back(std::move(*b));
      if (genesis) break;
    }
    send(from, std::move(resp));
  }

  std::optional<Block> lookup(const Hash256& id) const {
    if (const Block* b = find(id)) return *b;
    auto o = orphans.find(id);
    if (o != orphans.end()) return o->second;
    return store.get(id);
  }

  void on(NodeIndex from, BlockResponse& resp) {
    if (!fetch || resp.blocks.empty()) {
      if (fetch && from == fetch->peer) retry_fetch();  // that peer does not have it
      return;
    }
    if (!hash_linked(resp.blocks, fetch->id)) return;  // a lie or a stale answer
    fetch.reset();
    sync_peer = from;
    // Park from the oldest up so each links as soon as its parent is known.
    for (auto it = resp.blocks.rbegin(); it != resp.blocks.rend(); ++it) {
      Hash256 id = it->id();
      if (it->round <= committed.round) continue;
      if (find(id) || orphans.count(id)) continue;
      if (find(it->parent_id)) {
        insert_linked(id, std::move(*it));
      } else {
        park_orphan(id, std::move(*it), /*from_proposal=*/false);
      }
    }
    resume_sync();
  }

  // blocks[0] hashes to `first`, each next one to the previous one's parent,
  // rounds strictly decrease, and each QC names its parent.
  static bool hash_linked(const std::vector<Block>& blocks, const Hash256& first) {
    Hash256 expect = first;
    for (size_t i = 0; i < blocks.size(); ++i) {
      const Block& b = blocks[i];
      if (b.id() != expect) return false;
      if (i > 0 && b.round >= blocks[i - 1].round) return false;
      if (b.round > 0 && b.qc.block_id != b.parent_id) return false;
      expect = b.parent_id;
    }
    return true;
  }
};

// -----------------------------------------------------------------------------

Status validate_config(const Config& c) {
  if (c.validators.empty() || c.validators.size() > kValidatorsMax) {
    return error(ErrorCode::kInvalidArgument, "consensus: need 1..kValidatorsMax validators");
  }
  for (const auto& k : c.validators) {
    if (k.algorithm() != crypto::Algorithm::kEd25519) {
      return error(ErrorCode::kInvalidArgument, "consensus: validator keys must be Ed25519");
    }
  }
  if (c.self >= c.validators.size()) {
    return error(ErrorCode::kInvalidArgument, "consensus: self is not a validator index");
  }
  if (c.key.algorithm() != crypto::Algorithm::kEd25519 ||
      c.key.public_key().spki_der() != c.validators[c.self].spki_der()) {
    return error(ErrorCode::kInvalidArgument, "consensus: key is not validators[self]'s");
  }
  if (c.round_timeout_ms == 0 || c.round_timeout_max_ms < c.round_timeout_ms) {
    return error(ErrorCode::kInvalidArgument, "consensus: need 0 < round_timeout_ms <= max");
  }
  if (c.block_items_max == 0 || c.block_bytes_max == 0) {
    return error(ErrorCode::kInvalidArgument, "consensus: block limits must be positive");
  }
  return Status();
}

Recovered initial_recovered(const Block& genesis) {
  Recovered r;
  r.safety.high_qc = genesis_qc(genesis.id());
  r.committed = genesis;
  return r;
}

Replica::Replica(Config config, Recovered recovered, const BlockReader& store,
                 PayloadSource payload) {
  assert(validate_config(config).ok() && "Replica built from an invalid Config");
  s_ = std::make_unique<State>(std::move(config), std::move(recovered), store, std::move(payload));
}

Replica::~Replica() = default;

Output Replica::start(uint64_t now_ms) {
  Output out;
  s_->begin(out, now_ms);
  s_->try_commit(s_->safety.state().high_qc);  // a crash may have come between QC and commit
  s_->maybe_enter_round(/*by_qc=*/true);
  // Everyone enters the first round at once here, so a leader that waited
  // idle_proposal_ms would let the next leader's wait push followers past
  // their round timeout: the first proposal after a start is immediate.
  s_->skip_idle_wait = true;
  s_->try_propose();
  s_->resume_sync();
  s_->finish();
  return out;
}

Output Replica::on_message(NodeIndex from, Message message, uint64_t now_ms) {
  Output out;
  s_->begin(out, now_ms);
  s_->handle(from, std::move(message));
  s_->finish();
  return out;
}

Output Replica::on_timer(uint64_t now_ms) {
  Output out;
  s_->begin(out, now_ms);
  s_->on_timer();
  s_->finish();
  return out;
}

Output Replica::on_unreachable(std::vector<bool> unreachable, uint64_t now_ms) {
  Output out;
  s_->begin(out, now_ms);
  s_->unreachable = std::move(unreachable);
  s_->time_out_unreachable_leader();
  s_->finish();
  return out;
}

Output Replica::on_payload_available(uint64_t now_ms) {
  Output out;
  s_->begin(out, now_ms);
  s_->try_propose();
  s_->finish();
  return out;
}

uint64_t Replica::round() const {
  return s_->round();
}
const Block& Replica::committed_block() const {
  return s_->committed;
}
NodeIndex Replica::leader(uint64_t round) const {
  return s_->leader(round);
}
size_t Replica::pending_blocks() const {
  return s_->tree.size();
}
const SafetyState& Replica::safety_state() const {
  return s_->safety.state();
}
size_t Replica::validator_count() const {
  return s_->n();
}

}  // namespace custos::consensus
