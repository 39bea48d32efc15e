// The replica state machine: driven by hand (the test plays the other
// validators) and in a small synchronous 4-replica harness.
#include "consensus/replica.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <set>

#include "crypto/hash.h"
#include "test_keys.h"

namespace custos::consensus {
namespace {

using testing::Committee;

class MemStore : public BlockReader {
 public:
  std::optional<Block> get(const Hash256& id) const override {
    auto it = blocks.find(id);
    if (it == blocks.end()) return std::nullopt;
    return it->second;
  }
  void put(const Block& b) { blocks[b.id()] = b; }
  std::map<Hash256, Block> blocks;
};

// ---------------------------------------------------------------------------
// Driving one replica by hand

class SingleReplicaTest : public ::testing::Test {
 protected:
  // Replica 3 of 4: leads rounds 3, 7, ...; the test signs for 0..2.
  SingleReplicaTest() : c_(4) { rebuild(initial_recovered(c_.genesis)); }

  void rebuild(Recovered r) {
    replica_ = std::make_unique<Replica>(c_.config(3), std::move(r), store_, nullptr);
  }

  Output deliver(NodeIndex from, Message m, uint64_t now_ms = 100) {
    return replica_->on_message(from, std::move(m), now_ms);
  }

  static std::vector<Vote> votes_in(const Output& out) {
    std::vector<Vote> v;
    for (const auto& e : out.messages) {
      if (auto* vote = std::get_if<Vote>(&e.message)) v.push_back(*vote);
    }
    return v;
  }

  Committee c_;
  MemStore store_;
  std::unique_ptr<Replica> replica_;
};

TEST_F(SingleReplicaTest, VotesForAValidProposalToTheNextLeaderAfterPersisting) {
  replica_->start(0);
  Block b1 = c_.block(1, genesis_qc(c_.genesis_id), std::nullopt, {to_bytes("a")}, 50);
  Output out = deliver(1, Proposal{b1});
  auto votes = votes_in(out);
  ASSERT_EQ(votes.size(), 1u);
  EXPECT_EQ(votes[0].block_id, b1.id());
  EXPECT_EQ(votes[0].round, 1u);
  EXPECT_EQ(votes[0].voter, 3u);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].to, std::optional<NodeIndex>(2)) << "leader of round 2";
  ASSERT_TRUE(out.safety.has_value()) << "the vote's safety state must be persisted first";
  EXPECT_EQ(out.safety->last_voted_round, 1u);
  ASSERT_EQ(out.blocks.size(), 1u);
  EXPECT_EQ(out.blocks[0], b1);
  EXPECT_EQ(replica_->pending_blocks(), 1u);

  // The same proposal again: no second vote.
  EXPECT_TRUE(votes_in(deliver(1, Proposal{b1})).empty());
}

TEST_F(SingleReplicaTest, DropsInvalidProposalsWithoutVoting) {
  replica_->start(0);
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block wrong_leader = c_.block(1, g);
  wrong_leader.author = 2;
  sign_block(wrong_leader, c_.keys[2]);
  EXPECT_TRUE(deliver(2, Proposal{wrong_leader}).messages.empty());

  Block bad_sig = c_.block(1, g);
  bad_sig.signature[0] ^= 1;
  EXPECT_TRUE(deliver(1, Proposal{bad_sig}).messages.empty());

  Block forged_qc = c_.block(2, c_.qc(c_.genesis_id, 1, {0, 1}));  // too few signers
  EXPECT_TRUE(deliver(2, Proposal{forged_qc}).messages.empty());
  EXPECT_EQ(replica_->round(), 1u);

  // Garbage from an index outside the committee is ignored too.
  EXPECT_TRUE(deliver(9, Proposal{c_.block(1, g)}).messages.empty());
  // A good proposal still gets its vote afterwards.
  EXPECT_EQ(votes_in(deliver(1, Proposal{c_.block(1, g)})).size(), 1u);
}

TEST_F(SingleReplicaTest, BlockTimedTooFarAheadGetsNoVote) {
  replica_->start(0);
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block future = c_.block(1, g, std::nullopt, {}, 100 + kClockSkewMaxMs + 1);
  EXPECT_TRUE(votes_in(deliver(1, Proposal{future}, 100)).empty());
  Block b1 = c_.block(1, g, std::nullopt, {}, 100 + kClockSkewMaxMs);
  rebuild(initial_recovered(c_.genesis));
  replica_->start(0);
  EXPECT_EQ(votes_in(deliver(1, Proposal{b1}, 100)).size(), 1u) << "at the limit is fine";
}

TEST_F(SingleReplicaTest, TwoChainRuleCommitsOnlyConsecutiveRounds) {
  replica_->start(0);
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block b1 = c_.block(1, g, std::nullopt, {}, 1);
  Block b2 = c_.block(2, c_.qc_for(b1), std::nullopt, {}, 2);
  EXPECT_TRUE(deliver(1, Proposal{b1}).committed.empty());
  EXPECT_TRUE(deliver(2, Proposal{b2}).committed.empty()) << "QC(b1) alone commits nothing new";

  // Round 3 is ours (replica 3); it times out: TC for 3, then b4 extends b2.
  QuorumCert q2 = c_.qc_for(b2);
  TimeoutCert tc3 = c_.tc(3, {{0, q2}, {1, q2}, {2, q2}});
  Block b4 = c_.block(4, q2, tc3, {}, 4);
  Output out4 = deliver(0, Proposal{b4});
  // QC(b2) with b2.round == b1.round + 1 commits b1.
  ASSERT_EQ(out4.committed.size(), 1u);
  EXPECT_EQ(out4.committed[0], b1);

  // b5 certifies b4 (round 4) whose parent b2 has round 2: not consecutive,
  // so b2 is NOT committed by QC(b4).
  Block b5 = c_.block(5, c_.qc_for(b4), std::nullopt, {}, 5);
  EXPECT_TRUE(deliver(1, Proposal{b5}).committed.empty());
  EXPECT_EQ(replica_->committed_block(), b1);

  // b6 certifies b5 (round 5) whose parent b4 has round 4: commits b4 and
  // its uncommitted ancestor b2, oldest first.
  Block b6 = c_.block(6, c_.qc_for(b5), std::nullopt, {}, 6);
  Output out6 = deliver(2, Proposal{b6});
  ASSERT_EQ(out6.committed.size(), 2u);
  EXPECT_EQ(out6.committed[0], b2);
  EXPECT_EQ(out6.committed[1], b4);
  EXPECT_EQ(replica_->committed_block(), b4);
  EXPECT_EQ(replica_->pending_blocks(), 2u) << "b5 and b6 remain; committed ones are pruned";
}

TEST_F(SingleReplicaTest, NeverVotesInARoundItTimedOut) {
  Output s = replica_->start(0);
  ASSERT_TRUE(s.timer_ms.has_value());
  EXPECT_EQ(*s.timer_ms, 1000u);
  Output t = replica_->on_timer(1000);
  ASSERT_TRUE(t.safety.has_value());
  EXPECT_EQ(t.safety->highest_timeout_round, 1u);
  ASSERT_EQ(t.messages.size(), 1u);
  const auto* timeout = std::get_if<Timeout>(&t.messages[0].message);
  ASSERT_NE(timeout, nullptr);
  EXPECT_EQ(timeout->round, 1u);
  EXPECT_FALSE(t.messages[0].to.has_value()) << "timeouts go to everyone";

  Block b1 = c_.block(1, genesis_qc(c_.genesis_id), std::nullopt, {}, 10);
  Output out = deliver(1, Proposal{b1}, 1001);
  EXPECT_TRUE(votes_in(out).empty());
  EXPECT_EQ(replica_->pending_blocks(), 1u) << "kept for commits, just not voted";
}

TEST_F(SingleReplicaTest, TimeoutsFormATcAndBackoffGrows) {
  replica_->start(0);
  Output t1 = replica_->on_timer(1000);
  // Timeouts from two others (with ours, a quorum of 3) -> TC -> round 2.
  QuorumCert g = genesis_qc(c_.genesis_id);
  deliver(0, make_timeout(1, g, std::nullopt, 0, c_.keys[0]), 1001);
  EXPECT_EQ(replica_->round(), 1u);
  Output out = deliver(1, make_timeout(1, g, std::nullopt, 1, c_.keys[1]), 1002);
  EXPECT_EQ(replica_->round(), 2u);
  ASSERT_TRUE(out.safety.has_value());
  ASSERT_TRUE(out.safety->high_tc.has_value());
  EXPECT_EQ(out.safety->high_tc->round, 1u);
  // Second consecutive timeout: 2000 ms after entering round 2.
  ASSERT_TRUE(out.timer_ms.has_value());
  EXPECT_EQ(*out.timer_ms, 1002u + 2000u);
}

TEST_F(SingleReplicaTest, JoinsATimeoutOnceFPlusOneOthersTimedOut) {
  replica_->start(0);
  QuorumCert g = genesis_qc(c_.genesis_id);
  Output a = deliver(0, make_timeout(1, g, std::nullopt, 0, c_.keys[0]), 10);
  EXPECT_TRUE(a.messages.empty()) << "one timeout may come from a Byzantine node";
  Output b = deliver(1, make_timeout(1, g, std::nullopt, 1, c_.keys[1]), 11);
  ASSERT_EQ(b.messages.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<Timeout>(b.messages[0].message));
  EXPECT_EQ(replica_->round(), 2u) << "own timeout completed the TC";
}

TEST_F(SingleReplicaTest, LeaderFormsQcFromVotesAndProposes) {
  // Replica 3 leads round 3: it needs a QC for round 2.
  replica_->start(0);
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block b1 = c_.block(1, g, std::nullopt, {}, 1);
  Block b2 = c_.block(2, c_.qc_for(b1), std::nullopt, {}, 2);
  deliver(1, Proposal{b1});
  deliver(2, Proposal{b2});  // our own vote for b2 goes to ourselves
  EXPECT_EQ(replica_->round(), 2u);
  deliver(0, make_vote(b2.id(), 2, 0, c_.keys[0]));
  Output out = deliver(1, make_vote(b2.id(), 2, 1, c_.keys[1]), 600);
  EXPECT_EQ(replica_->round(), 3u);
  auto proposal_in = [](const Output& o) -> std::optional<Proposal> {
    for (const auto& e : o.messages) {
      if (auto* x = std::get_if<Proposal>(&e.message)) return *x;
    }
    return std::nullopt;
  };
  // Nothing uncommitted carries payload and the mempool is empty: the leader
  // waits idle_proposal_ms, then sends an empty heartbeat block.
  EXPECT_FALSE(proposal_in(out).has_value());
  ASSERT_TRUE(out.timer_ms.has_value());
  EXPECT_EQ(*out.timer_ms, 600u + 500u);
  Output idle = replica_->on_timer(600 + 500);
  std::optional<Proposal> p = proposal_in(idle);
  ASSERT_TRUE(p.has_value()) << "heartbeat proposal after idle_proposal_ms";
  EXPECT_EQ(idle.blocks.size(), 1u) << "own proposal is persisted";
  EXPECT_TRUE(p->block.payload.empty());
  EXPECT_EQ(p->block.round, 3u);
  EXPECT_EQ(p->block.parent_id, b2.id());
  EXPECT_EQ(p->block.qc.signatures.size(), 3u);
}

TEST_F(SingleReplicaTest, DuplicateAndForgedVotesDoNotMakeAQc) {
  replica_->start(0);
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block b1 = c_.block(1, g, std::nullopt, {}, 1);
  Block b2 = c_.block(2, c_.qc_for(b1), std::nullopt, {}, 2);
  deliver(1, Proposal{b1});
  deliver(2, Proposal{b2});  // own vote counted
  deliver(0, make_vote(b2.id(), 2, 0, c_.keys[0]));
  deliver(0, make_vote(b2.id(), 2, 0, c_.keys[0]));    // duplicate
  Vote forged = make_vote(b2.id(), 2, 1, c_.keys[0]);  // signed by 0, claims 1
  deliver(0, forged);
  EXPECT_EQ(replica_->round(), 2u);
  deliver(1, make_vote(b2.id(), 2, 1, c_.keys[1]));
  EXPECT_EQ(replica_->round(), 3u);
}

TEST_F(SingleReplicaTest, RestartFromRecoveredDoesNotVoteAgain) {
  replica_->start(0);
  Block b1 = c_.block(1, genesis_qc(c_.genesis_id), std::nullopt, {}, 1);
  Output out = deliver(1, Proposal{b1});
  ASSERT_TRUE(out.safety.has_value());
  ASSERT_EQ(votes_in(out).size(), 1u);

  Recovered r;
  r.safety = *out.safety;
  r.committed = c_.genesis;
  r.pending = out.blocks;
  rebuild(std::move(r));
  replica_->start(200);
  EXPECT_EQ(replica_->pending_blocks(), 1u);
  // The same round-1 block, and an equivocating one: neither gets a vote.
  EXPECT_TRUE(votes_in(deliver(1, Proposal{b1}, 201)).empty());
  Block other = c_.block(1, genesis_qc(c_.genesis_id), std::nullopt, {to_bytes("x")}, 1);
  EXPECT_TRUE(votes_in(deliver(1, Proposal{other}, 202)).empty());
  // Round 2 proceeds normally (our vote goes to ourselves: we lead round 3).
  Block b2 = c_.block(2, c_.qc_for(b1), std::nullopt, {}, 2);
  Output out2 = deliver(2, Proposal{b2}, 203);
  ASSERT_TRUE(out2.safety.has_value());
  EXPECT_EQ(out2.safety->last_voted_round, 2u);
  EXPECT_EQ(out2.blocks.size(), 1u);
}

TEST_F(SingleReplicaTest, FetchesMissingAncestorsAndRefusesLies) {
  replica_->start(0);
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block b1 = c_.block(1, g, std::nullopt, {to_bytes("p1")}, 1);
  Block b2 = c_.block(2, c_.qc_for(b1), std::nullopt, {}, 2);
  Block b3 = c_.block(3, c_.qc_for(b2), std::nullopt, {}, 3);  // our round; signed by 3
  Block b4 = c_.block(4, c_.qc_for(b3), std::nullopt, {}, 4);
  Output out = deliver(0, Proposal{b4});
  const BlockRequest* req = nullptr;
  for (const auto& e : out.messages) {
    if (auto* r = std::get_if<BlockRequest>(&e.message)) {
      req = r;
      EXPECT_EQ(e.to, std::optional<NodeIndex>(0)) << "asks the sender first";
    }
  }
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(req->block_id, b3.id());
  EXPECT_TRUE(votes_in(out).empty());

  // A response that does not hash to the request is ignored.
  Block fake = b3;
  fake.time_ms = 99;
  EXPECT_TRUE(deliver(0, BlockResponse{{fake, b2, b1}}).committed.empty());
  EXPECT_EQ(replica_->committed_block(), c_.genesis);
  // A chain with a broken link is ignored.
  EXPECT_TRUE(deliver(0, BlockResponse{{b3, b1}}).committed.empty());

  Output linked = deliver(0, BlockResponse{{b3, b2, b1}});
  ASSERT_EQ(linked.committed.size(), 2u);  // QC(b3) commits b2 and b1
  EXPECT_EQ(linked.committed[0], b1);
  EXPECT_EQ(linked.committed[1], b2);
  EXPECT_EQ(votes_in(linked).size(), 1u) << "the parked round-4 proposal gets its vote";
}

TEST_F(SingleReplicaTest, EquivocatingLeaderCannotFloodMemory) {
  replica_->start(0);
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block first = c_.block(1, g, std::nullopt, {to_bytes("first")}, 1);
  EXPECT_EQ(votes_in(deliver(1, Proposal{first})).size(), 1u);
  for (int k = 0; k < 200; ++k) {
    Block other = c_.block(1, g, std::nullopt, {to_bytes("other-" + std::to_string(k))}, 1);
    EXPECT_TRUE(deliver(1, Proposal{other}).messages.empty());
  }
  EXPECT_EQ(replica_->pending_blocks(), 1u);

  // A quorum certified another of its blocks (this replica's vote was not
  // needed): the next proposal names it, the replica fetches it and goes on.
  Block certified = c_.block(1, g, std::nullopt, {to_bytes("other-7")}, 1);
  Block b2 = c_.block(2, c_.qc_for(certified), std::nullopt, {}, 2);
  Output out = deliver(2, Proposal{b2});
  bool asked = false;
  for (const auto& e : out.messages) {
    if (auto* r = std::get_if<BlockRequest>(&e.message)) asked = r->block_id == certified.id();
  }
  EXPECT_TRUE(asked);
  deliver(2, BlockResponse{{certified}});
  EXPECT_EQ(replica_->pending_blocks(), 3u) << "first, certified, b2 (first goes at the commit)";
  EXPECT_EQ(replica_->safety_state().last_voted_round, 2u) << "voted for b2";
}

TEST_F(SingleReplicaTest, VotesAndTimeoutsFarInTheFutureAreIgnored) {
  replica_->start(0);
  Hash256 id{};
  id[0] = 1;
  // Round 1 + kFutureRoundsMax + 1 would be led by (round+1) % 4.
  for (uint64_t r = 0; r < 4; ++r) {
    uint64_t round = kFutureRoundsMax + 2 + r;
    for (NodeIndex v = 0; v < 3; ++v) {
      replica_->on_message(v, make_vote(id, round, v, c_.keys[v]), 100);
    }
  }
  EXPECT_EQ(replica_->round(), 1u);
}

TEST_F(SingleReplicaTest, OldQcInADelayedTimeoutFetchesNothing) {
  // Found by the simulation (tests/sim, GenesisFetchStall): a delayed timeout
  // carrying the genesis QC made a replica past genesis ask for the genesis
  // block, which no peer keeps, forever.
  replica_->start(0);
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block b1 = c_.block(1, g, std::nullopt, {}, 1);
  Block b2 = c_.block(2, c_.qc_for(b1), std::nullopt, {}, 2);
  Block b3 = c_.block(3, c_.qc_for(b2), std::nullopt, {}, 3);
  Block b4 = c_.block(4, c_.qc_for(b3), std::nullopt, {}, 4);
  for (const Block& b : {b1, b2, b3, b4}) deliver(b.author, Proposal{b});
  ASSERT_EQ(replica_->committed_block(), b2);
  // b1 is pruned from memory now, and genesis long before.
  Output out = deliver(0, make_timeout(1, g, std::nullopt, 0, c_.keys[0]));
  Output out2 = deliver(1, make_timeout(2, c_.qc_for(b1), std::nullopt, 1, c_.keys[1]));
  for (const Output* o : {&out, &out2}) {
    for (const auto& e : o->messages) {
      EXPECT_FALSE(std::holds_alternative<BlockRequest>(e.message))
          << "asked for a committed block";
    }
  }
}

TEST_F(SingleReplicaTest, FetchRetriesRotatePeersAndFollowTheCurrentNeed) {
  replica_->start(0);
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block b1 = c_.block(1, g, std::nullopt, {}, 1);
  Block b2 = c_.block(2, c_.qc_for(b1), std::nullopt, {}, 2);
  Output first = deliver(2, Proposal{b2}, 100);  // b1 is missing: ask node 2
  std::vector<std::pair<NodeIndex, Hash256>> asked;
  auto collect = [&](const Output& o) {
    for (const auto& e : o.messages) {
      if (auto* r = std::get_if<BlockRequest>(&e.message)) asked.emplace_back(*e.to, r->block_id);
    }
  };
  collect(first);
  // An empty answer from that peer moves on to the next one at once.
  collect(deliver(2, BlockResponse{}, 110));
  ASSERT_TRUE(first.timer_ms.has_value());
  collect(replica_->on_timer(110 + 1000));
  ASSERT_EQ(asked.size(), 3u);
  EXPECT_EQ(asked[0], std::make_pair(NodeIndex{2}, b1.id()));
  EXPECT_EQ(asked[1].first, 0u) << "3 is itself";
  EXPECT_EQ(asked[2].first, 1u);
  for (const auto& a : asked) EXPECT_EQ(a.second, b1.id());
  // The block arrives from anyone: no more requests.
  deliver(1, BlockResponse{{b1}}, 1200);
  asked.clear();
  collect(replica_->on_timer(5000));
  EXPECT_TRUE(asked.empty());
  EXPECT_EQ(replica_->pending_blocks(), 2u);
}

TEST_F(SingleReplicaTest, AnswersBlockRequestsByWalkingParents) {
  replica_->start(0);
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block b1 = c_.block(1, g, std::nullopt, {}, 1);
  Block b2 = c_.block(2, c_.qc_for(b1), std::nullopt, {}, 2);
  store_.put(c_.genesis);
  store_.put(b1);  // persisted earlier; b2 is in memory only
  deliver(1, Proposal{b1});
  deliver(2, Proposal{b2});
  Output out = deliver(1, BlockRequest{b2.id(), 5});
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].to, std::optional<NodeIndex>(1));
  const auto& resp = std::get<BlockResponse>(out.messages[0].message);
  ASSERT_EQ(resp.blocks.size(), 3u);
  EXPECT_EQ(resp.blocks[0], b2);
  EXPECT_EQ(resp.blocks[1], b1);
  EXPECT_EQ(resp.blocks[2], c_.genesis);

  Hash256 unknown{};
  Output none = deliver(1, BlockRequest{unknown, 5});
  ASSERT_EQ(none.messages.size(), 1u);
  EXPECT_TRUE(std::get<BlockResponse>(none.messages[0].message).blocks.empty());
}

TEST(ConfigTest, ValidateConfigRefusesInconsistentConfigs) {
  Committee c(4);
  EXPECT_TRUE(validate_config(c.config(0)).ok());
  Config wrong_key = c.config(0);
  wrong_key.key = c.keys[1];
  EXPECT_EQ(validate_config(wrong_key).code(), ErrorCode::kInvalidArgument);
  Config self_out = c.config(0);
  self_out.self = 4;
  EXPECT_FALSE(validate_config(self_out).ok());
  Config none = c.config(0);
  none.validators.clear();
  EXPECT_FALSE(validate_config(none).ok());
  Config zero_timeout = c.config(0);
  zero_timeout.round_timeout_ms = 0;
  EXPECT_FALSE(validate_config(zero_timeout).ok());
  Config es256 = c.config(0);
  auto p256 = crypto::PrivateKey::generate(crypto::Algorithm::kES256);
  ASSERT_TRUE(p256.ok());
  es256.validators[0] = p256->public_key();
  es256.key = *p256;
  EXPECT_FALSE(validate_config(es256).ok()) << "node keys are Ed25519";
}

// ---------------------------------------------------------------------------
// A synchronous cluster: messages go through the wire codec, every vote and
// timeout is checked against the safety invariants, timers fire in order.

class Cluster {
 public:
  struct Node {
    MemStore store;
    std::vector<Bytes> mempool;
    std::set<Hash256> committed_items;
    std::vector<Block> log;  // committed blocks, in order
    SafetyState persisted;
    std::unique_ptr<Replica> replica;
    std::optional<uint64_t> timer_ms;
    bool up = true;
  };

  explicit Cluster(size_t n, uint64_t seed = 12345) : c_(n), rng_(seed) {
    for (size_t i = 0; i < n; ++i) {
      nodes_.push_back(std::make_unique<Node>());
      nodes_[i]->store.put(c_.genesis);
    }
    for (size_t i = 0; i < n; ++i) boot(static_cast<NodeIndex>(i), initial_recovered(c_.genesis));
  }

  void submit(const Bytes& item) {
    for (auto& n : nodes_) n->mempool.push_back(item);
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i]->up)
        apply(static_cast<NodeIndex>(i), nodes_[i]->replica->on_payload_available(now_ms_));
    }
  }

  void crash(NodeIndex i) {
    nodes_[i]->up = false;
    nodes_[i]->replica.reset();
  }

  // What the running nodes' transports report (every node's, or `only`'s):
  // `down` is unreachable.
  void report_unreachable(const std::set<NodeIndex>& down,
                          std::optional<NodeIndex> only = std::nullopt) {
    std::vector<bool> v(nodes_.size(), false);
    for (NodeIndex d : down) v[d] = true;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!nodes_[i]->up || (only && *only != i)) continue;
      apply(static_cast<NodeIndex>(i), nodes_[i]->replica->on_unreachable(v, now_ms_));
    }
  }

  // Rebuild from what node i persisted, as a real node would after a restart.
  void restart(NodeIndex i) {
    Node& n = *nodes_[i];
    Recovered r;
    r.safety = n.persisted;
    r.committed = n.log.empty() ? c_.genesis : n.log.back();
    for (const auto& [id, b] : n.store.blocks) {
      if (b.round > r.committed.round) r.pending.push_back(b);
    }
    n.up = true;
    boot(i, std::move(r));
  }

  // Deliver until quiet, then fire the earliest timer; stop when pred holds.
  bool run_until(const std::function<bool()>& pred, uint64_t max_ms) {
    uint64_t end_ms = now_ms_ + max_ms;
    while (now_ms_ <= end_ms) {
      deliver_all();
      if (pred()) return true;
      std::optional<uint64_t> next;
      for (auto& n : nodes_) {
        if (n->up && n->timer_ms) next = next ? std::min(*next, *n->timer_ms) : *n->timer_ms;
      }
      if (!next) return false;
      now_ms_ = std::max(now_ms_, *next);
      for (size_t i = 0; i < nodes_.size(); ++i) {
        Node& n = *nodes_[i];
        if (n.up && n.timer_ms && *n.timer_ms <= now_ms_) {
          n.timer_ms.reset();
          apply(static_cast<NodeIndex>(i), n.replica->on_timer(now_ms_));
        }
      }
    }
    return pred();
  }

  Node& node(NodeIndex i) { return *nodes_[i]; }
  size_t size() const { return nodes_.size(); }
  uint64_t now_ms() const { return now_ms_; }
  size_t timeouts_sent() const { return timeouts_sent_; }
  size_t requests_sent() const { return requests_sent_; }
  // Messages to or from a node in `isolated` are lost.
  std::set<NodeIndex> isolated;
  // Seeded (deterministic) message loss and duplication.
  uint32_t loss_per_mille = 0;
  uint32_t dup_per_mille = 0;

  // Every log is a prefix of the longest one.
  void expect_logs_agree() const {
    const std::vector<Block>* longest = &nodes_[0]->log;
    for (const auto& n : nodes_) {
      if (n->log.size() > longest->size()) longest = &n->log;
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const auto& log = nodes_[i]->log;
      for (size_t k = 0; k < log.size(); ++k) {
        ASSERT_EQ(log[k].id(), (*longest)[k].id()) << "node " << i << " diverges at " << k;
      }
    }
  }

 private:
  void boot(NodeIndex i, Recovered r) {
    Node* n = nodes_[i].get();
    n->persisted = r.safety;
    PayloadSource source = [n](size_t items_max, size_t bytes_max,
                               const std::function<bool(const Hash256&)>& in_flight) {
      std::vector<Bytes> out;
      size_t bytes = 0;
      for (const Bytes& item : n->mempool) {
        Hash256 id = crypto::sha256(item);
        if (n->committed_items.count(id) || in_flight(id)) continue;
        if (out.size() == items_max || bytes + item.size() > bytes_max) break;
        bytes += item.size();
        out.push_back(item);
      }
      return out;
    };
    n->replica = std::make_unique<Replica>(c_.config(i), std::move(r), n->store, source);
    apply(i, n->replica->start(now_ms_));
  }

  void apply(NodeIndex i, Output out) {
    Node& n = *nodes_[i];
    if (out.safety) {
      EXPECT_GE(out.safety->last_voted_round, n.persisted.last_voted_round) << "node " << i;
      n.persisted = *out.safety;
    }
    for (const Block& b : out.blocks) n.store.put(b);
    for (const Envelope& e : out.messages) {
      check_safety(i, e.message);
      for (size_t to = 0; to < nodes_.size(); ++to) {
        if (to == i || (e.to && *e.to != to)) continue;
        network_.emplace_back(i, static_cast<NodeIndex>(to), encode_message(e.message));
      }
    }
    for (const Block& b : out.committed) {
      if (!n.log.empty()) {
        EXPECT_EQ(b.parent_id, n.log.back().id()) << "commits must chain, node " << i;
      }
      n.log.push_back(b);
      n.store.put(b);
      for (const Bytes& item : b.payload) n.committed_items.insert(crypto::sha256(item));
    }
    n.timer_ms = out.timer_ms;
  }

  // Safety invariants on every vote and timeout that leaves a node.
  void check_safety(NodeIndex from, const Message& m) {
    if (const auto* v = std::get_if<Vote>(&m)) {
      auto [it, fresh] = votes_.emplace(std::make_pair(v->voter, v->round), v->block_id);
      EXPECT_TRUE(fresh || it->second == v->block_id)
          << "node " << from << " voted twice in round " << v->round;
      EXPECT_FALSE(timed_out_.count({v->voter, v->round}))
          << "node " << from << " voted after its timeout in round " << v->round;
    } else if (const auto* t = std::get_if<Timeout>(&m)) {
      timed_out_.insert({t->voter, t->round});
      ++timeouts_sent_;
    } else if (std::holds_alternative<BlockRequest>(m)) {
      ++requests_sent_;
    }
  }

  void deliver_all() {
    for (size_t steps = 0; !network_.empty(); ++steps) {
      ASSERT_LT(steps, 1'000'000u) << "livelock: the network never goes quiet";
      auto [from, to, bytes] = std::move(network_.front());
      network_.pop_front();
      if (!nodes_[to]->up || !nodes_[from]->up) continue;
      if (isolated.count(from) || isolated.count(to)) continue;
      if (loss_per_mille && rng_() % 1000 < loss_per_mille) continue;
      if (dup_per_mille && rng_() % 1000 < dup_per_mille && steps < 100'000) {
        network_.emplace_back(from, to, bytes);  // delivered again, later
      }
      auto m = decode_message(bytes);
      ASSERT_TRUE(m.ok()) << m.status().to_string();
      apply(to, nodes_[to]->replica->on_message(from, std::move(*m), now_ms_));
    }
  }

  Committee c_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::deque<std::tuple<NodeIndex, NodeIndex, Bytes>> network_;
  uint64_t now_ms_ = 0;
  std::map<std::pair<NodeIndex, uint64_t>, Hash256> votes_;
  std::set<std::pair<NodeIndex, uint64_t>> timed_out_;
  size_t timeouts_sent_ = 0;
  size_t requests_sent_ = 0;
  std::mt19937_64 rng_;
};

bool all_committed(Cluster& cluster, const std::vector<Bytes>& items,
                   std::set<NodeIndex> skip = {}) {
  for (NodeIndex i = 0; i < cluster.size(); ++i) {
    if (skip.count(i)) continue;
    for (const Bytes& item : items) {
      if (!cluster.node(i).committed_items.count(crypto::sha256(item))) return false;
    }
  }
  return true;
}

std::vector<Bytes> make_items(const std::string& prefix, size_t count) {
  std::vector<Bytes> items;
  for (size_t k = 0; k < count; ++k) items.push_back(to_bytes(prefix + std::to_string(k)));
  return items;
}

TEST(ClusterTest, CommitsSubmittedItemsExactlyOnceEverywhere) {
  Cluster cluster(4);
  auto items = make_items("event-", 20);
  for (const Bytes& item : items) cluster.submit(item);
  ASSERT_TRUE(cluster.run_until([&] { return all_committed(cluster, items); }, 60'000));
  cluster.expect_logs_agree();
  std::map<Hash256, int> seen;
  for (const Block& b : cluster.node(0).log) {
    for (const Bytes& item : b.payload) seen[crypto::sha256(item)]++;
  }
  EXPECT_EQ(seen.size(), items.size());
  for (const auto& [id, count] : seen) EXPECT_EQ(count, 1) << "an item was committed twice";
  EXPECT_EQ(cluster.timeouts_sent(), 0u) << "no timeouts in a healthy synchronous network";
  EXPECT_LE(cluster.node(0).replica->pending_blocks(), 3u);
}

TEST(ClusterTest, HeartbeatsKeepRoundsAdvancingWhenIdle) {
  Cluster cluster(4);
  ASSERT_TRUE(cluster.run_until([&] { return cluster.node(1).log.size() >= 10; }, 60'000));
  cluster.expect_logs_agree();
  EXPECT_EQ(cluster.timeouts_sent(), 0u);
  // Empty blocks every idle_proposal_ms, not faster.
  EXPECT_GE(cluster.now_ms(), 10u * 500u);
}

TEST(ClusterTest, PayloadCommitsEverywhereWithoutIdleWaits) {
  Cluster cluster(4);
  ASSERT_TRUE(cluster.run_until([&] { return cluster.node(0).log.size() >= 4; }, 60'000));
  uint64_t submitted_ms = cluster.now_ms();
  auto items = make_items("prompt-", 3);
  for (const Bytes& item : items) cluster.submit(item);
  ASSERT_TRUE(cluster.run_until([&] { return all_committed(cluster, items); }, 60'000));
  // Delivery is instant here, so any idle wait would show as elapsed time.
  EXPECT_EQ(cluster.now_ms(), submitted_ms);
}

TEST(ClusterTest, CrashedLeaderCostsATimeoutThenProgressResumes) {
  Cluster cluster(4);
  cluster.crash(2);  // leads rounds 2, 6, 10, ...
  auto items = make_items("after-crash-", 10);
  for (const Bytes& item : items) cluster.submit(item);
  ASSERT_TRUE(cluster.run_until([&] { return all_committed(cluster, items, {2}); }, 120'000));
  EXPECT_GT(cluster.timeouts_sent(), 0u);
  bool some_tc = false;
  for (NodeIndex i : {0u, 1u, 3u})
    some_tc = some_tc || cluster.node(i).persisted.high_tc.has_value();
  EXPECT_TRUE(some_tc) << "a TC moved the cluster past the crashed leader's round";
  // Keep going for a while: the cluster is not stuck.
  size_t before = cluster.node(0).log.size();
  ASSERT_TRUE(
      cluster.run_until([&] { return cluster.node(0).log.size() >= before + 10; }, 120'000));
  cluster.expect_logs_agree();
}

// With the crashed leader reported unreachable, its rounds end at once by a
// TC instead of after the 1 s round timeout (here: no simulated time passes
// at all), and once it is back and reachable its rounds carry blocks again.
TEST(ClusterTest, UnreachableLeaderIsTimedOutAtOnce) {
  Cluster cluster(4);
  ASSERT_TRUE(cluster.run_until([&] { return cluster.node(0).log.size() >= 2; }, 60'000));
  cluster.crash(2);  // leads rounds 2, 6, 10, ...
  cluster.report_unreachable({2});
  const uint64_t crashed_ms = cluster.now_ms();
  for (int wave = 0; wave < 5; ++wave) {  // several turns of the leader rotation
    auto items = make_items("wave-" + std::to_string(wave) + "-", 4);
    for (const Bytes& item : items) cluster.submit(item);
    ASSERT_TRUE(cluster.run_until([&] { return all_committed(cluster, items, {2}); }, 60'000));
  }
  EXPECT_EQ(cluster.now_ms(), crashed_ms) << "a round waited for its timeout";
  EXPECT_GT(cluster.timeouts_sent(), 0u);
  EXPECT_GT(cluster.node(0).replica->round(), 10u);
  cluster.expect_logs_agree();

  cluster.restart(2);
  cluster.report_unreachable({});
  auto items = make_items("back-", 12);
  for (const Bytes& item : items) cluster.submit(item);
  ASSERT_TRUE(cluster.run_until([&] { return all_committed(cluster, items); }, 60'000));
  // Its rounds carry blocks again (only blocks committed after the restart
  // count: node 2 led one before the crash).
  const size_t restarted_at = cluster.node(0).log.size();
  ASSERT_TRUE(cluster.run_until(
      [&] {
        const auto& log = cluster.node(0).log;
        for (size_t k = restarted_at; k < log.size(); ++k)
          if (log[k].author == 2) return true;
        return false;
      },
      60'000));
  cluster.expect_logs_agree();
}

// A wrong view (node 2 is fine; node 1, leader of rounds 1, 5, 9, ...,
// believes it unreachable, and node 2 leads the rounds after node 1's)
// costs node 1's vote in those rounds, never a round timeout, progress or
// safety: node 1 still proposes, and the other three certify its blocks.
TEST(ClusterTest, AWrongUnreachableViewDoesNotStall) {
  Cluster cluster(4);
  cluster.report_unreachable({2}, /*only=*/1);
  const uint64_t start_ms = cluster.now_ms();
  for (int wave = 0; wave < 5; ++wave) {
    auto items = make_items("wrong-view-" + std::to_string(wave) + "-", 4);
    for (const Bytes& item : items) cluster.submit(item);
    ASSERT_TRUE(cluster.run_until([&] { return all_committed(cluster, items); }, 60'000));
  }
  EXPECT_EQ(cluster.now_ms(), start_ms) << "a round waited for its timeout";
  EXPECT_GT(cluster.node(0).replica->round(), 5u);
  bool led_by_1 = false;
  for (const Block& b : cluster.node(0).log) led_by_1 = led_by_1 || b.author == 1;
  EXPECT_TRUE(led_by_1) << "node 1 gave up its rounds instead of proposing";
  cluster.expect_logs_agree();
}

TEST(ClusterTest, RestartedReplicaContinuesWithoutDoubleVoting) {
  Cluster cluster(4);
  ASSERT_TRUE(cluster.run_until([&] { return cluster.node(1).log.size() >= 5; }, 60'000));
  for (NodeIndex i = 0; i < 4; ++i) {  // each in turn, including mid-round
    cluster.crash(i);
    cluster.restart(i);
    size_t before = cluster.node(i).log.size();
    ASSERT_TRUE(
        cluster.run_until([&] { return cluster.node(i).log.size() >= before + 3; }, 60'000));
  }
  auto items = make_items("post-restart-", 5);
  for (const Bytes& item : items) cluster.submit(item);
  ASSERT_TRUE(cluster.run_until([&] { return all_committed(cluster, items); }, 60'000));
  cluster.expect_logs_agree();  // check_safety watched every vote on the way
}

TEST(ClusterTest, ReplicaFarBehindCatchesUpByBlockRequests) {
  Cluster cluster(4);
  cluster.isolated.insert(3);
  // More than two responses' worth of blocks (kBlocksPerResponseMax each).
  ASSERT_TRUE(cluster.run_until(
      [&] { return cluster.node(0).log.size() >= 3 * kBlocksPerResponseMax; }, 3'600'000));
  EXPECT_TRUE(cluster.node(3).log.empty());
  cluster.isolated.clear();
  size_t target = cluster.node(0).log.size();
  ASSERT_TRUE(cluster.run_until([&] { return cluster.node(3).log.size() >= target; }, 600'000));
  EXPECT_GE(cluster.requests_sent(), 3u);
  cluster.expect_logs_agree();
  EXPECT_LE(cluster.node(3).replica->pending_blocks(), kPendingBlocksMax);
}

TEST(ClusterTest, LossyDuplicatingNetworkStillCommitsEverythingOnce) {
  const char* seeds_env = getenv("CUSTOS_CONSENSUS_SEEDS");  // longer runs on demand
  uint64_t seeds = seeds_env ? std::strtoull(seeds_env, nullptr, 10) : 3;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    uint32_t loss = seed % 2 ? 50u : 250u;
    SCOPED_TRACE("seed " + std::to_string(seed));
    Cluster cluster(4, seed);
    cluster.loss_per_mille = loss;
    cluster.dup_per_mille = 100;
    auto items = make_items("lossy-" + std::to_string(loss) + "-", 30);
    for (const Bytes& item : items) cluster.submit(item);
    ASSERT_TRUE(cluster.run_until([&] { return all_committed(cluster, items); }, 3'600'000))
        << "loss " << loss;
    cluster.expect_logs_agree();
    std::map<Hash256, int> seen;
    for (const Block& b : cluster.node(2).log) {
      for (const Bytes& item : b.payload) EXPECT_EQ(++seen[crypto::sha256(item)], 1);
    }
  }
}

TEST(ClusterTest, SevenReplicasToleratingTwoCrashes) {
  Cluster cluster(7);
  cluster.crash(3);
  cluster.crash(5);
  auto items = make_items("seven-", 10);
  for (const Bytes& item : items) cluster.submit(item);
  ASSERT_TRUE(cluster.run_until([&] { return all_committed(cluster, items, {3, 5}); }, 600'000));
  cluster.expect_logs_agree();
}

TEST(ClusterTest, NoProgressWithoutAQuorumButNoDivergenceEither) {
  Cluster cluster(4);
  cluster.crash(1);
  cluster.crash(2);  // 2 of 4 down: f = 1 exceeded
  auto items = make_items("stuck-", 3);
  for (const Bytes& item : items) cluster.submit(item);
  EXPECT_FALSE(cluster.run_until([&] { return all_committed(cluster, items, {1, 2}); }, 60'000));
  EXPECT_TRUE(cluster.node(0).log.empty());
  // Back to a quorum: progress resumes.
  cluster.restart(1);
  ASSERT_TRUE(cluster.run_until([&] { return all_committed(cluster, items, {2}); }, 600'000));
  cluster.expect_logs_agree();
}

// One node at a time crashes (losing nothing it synced) and restarts, on a
// lossy network, while a node is sometimes cut off long enough to need
// block requests. Safety is checked on every vote; all items must commit.
TEST(ClusterTest, CrashRestartAndPartitionChurnOnALossyNetwork) {
  const char* seeds_env = getenv("CUSTOS_CONSENSUS_SEEDS");
  uint64_t seeds = seeds_env ? std::strtoull(seeds_env, nullptr, 10) : 3;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Cluster cluster(4, seed);
    cluster.loss_per_mille = 30;
    cluster.dup_per_mille = 30;
    std::mt19937_64 chaos(seed * 7919);
    std::vector<Bytes> items;
    for (int step = 0; step < 12; ++step) {
      auto batch = make_items("churn-" + std::to_string(step) + "-", 3);
      items.insert(items.end(), batch.begin(), batch.end());
      for (const Bytes& item : batch) cluster.submit(item);
      NodeIndex victim = static_cast<NodeIndex>(chaos() % 4);
      if (chaos() % 2) {
        cluster.crash(victim);
      } else {
        cluster.isolated = {victim};
      }
      uint64_t until = cluster.now_ms() + 500 + chaos() % 20'000;
      cluster.run_until([&] { return cluster.now_ms() >= until; }, 30'000);
      if (!cluster.node(victim).up) cluster.restart(victim);
      cluster.isolated.clear();
    }
    ASSERT_TRUE(cluster.run_until([&] { return all_committed(cluster, items); }, 3'600'000));
    cluster.expect_logs_agree();
  }
}

}  // namespace
}  // namespace custos::consensus
