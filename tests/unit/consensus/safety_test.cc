// Safety rules and certificate verification, each rule refused on purpose.
#include <gtest/gtest.h>

#include "consensus/certs.h"
#include "consensus/safety_rules.h"
#include "test_keys.h"

namespace custos::consensus {
namespace {

using testing::Committee;

class SafetyTest : public ::testing::Test {
 protected:
  SafetyTest() : c_(4), rules_(fresh()) {
    validators_.keys = &c_.publics;
    validators_.genesis_id = c_.genesis_id;
  }

  SafetyState fresh() const {
    SafetyState s;
    s.high_qc = genesis_qc(c_.genesis_id);
    return s;
  }

  Committee c_;
  SafetyRules rules_;
  Validators validators_;
};

TEST_F(SafetyTest, VotesOncePerRound) {
  Block b1 = c_.block(1, genesis_qc(c_.genesis_id));
  ASSERT_TRUE(rules_.record_vote(b1).ok());
  EXPECT_EQ(rules_.state().last_voted_round, 1u);

  // A second block for round 1 (an equivocating leader) is refused.
  Block other = c_.block(1, genesis_qc(c_.genesis_id), std::nullopt, {to_bytes("x")});
  Status s = rules_.record_vote(other);
  EXPECT_EQ(s.code(), ErrorCode::kConflict);
  EXPECT_EQ(rules_.record_vote(b1).code(), ErrorCode::kConflict) << "same block twice";

  Block b2 = c_.block(2, c_.qc_for(b1));
  EXPECT_TRUE(rules_.record_vote(b2).ok());
  EXPECT_EQ(rules_.state().last_voted_round, 2u);
}

TEST_F(SafetyTest, NoVoteInARoundAfterItsTimeout) {
  ASSERT_TRUE(rules_.record_timeout(1).ok());
  Block b1 = c_.block(1, genesis_qc(c_.genesis_id));
  EXPECT_EQ(rules_.check_vote(b1).code(), ErrorCode::kConflict);
  EXPECT_TRUE(rules_.record_timeout(1).ok()) << "re-sending the same timeout is allowed";
  EXPECT_TRUE(rules_.record_timeout(2).ok());
  EXPECT_EQ(rules_.record_timeout(1).code(), ErrorCode::kConflict) << "going back";
}

TEST_F(SafetyTest, TimeoutAfterVoteInSameRoundIsAllowedButNotBelow) {
  Block b1 = c_.block(1, genesis_qc(c_.genesis_id));
  Block b2 = c_.block(2, c_.qc_for(b1));
  ASSERT_TRUE(rules_.record_vote(b2).ok());
  EXPECT_TRUE(rules_.check_timeout(2).ok());
  EXPECT_FALSE(rules_.check_timeout(1).ok());
}

TEST_F(SafetyTest, BlockMustExtendPreviousRoundOrTheTcsHighestQc) {
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block b1 = c_.block(1, g);
  QuorumCert q1 = c_.qc_for(b1);

  // Round 3 on the round-1 QC without a TC: refused (skips round 2).
  Block skip = c_.block(3, q1);
  EXPECT_FALSE(rules_.check_vote(skip).ok());

  // With a TC for round 2 whose highest QC is round 1: allowed.
  TimeoutCert tc2 = c_.tc(2, {{0, q1}, {1, g}, {2, q1}});
  EXPECT_TRUE(rules_.check_vote(c_.block(3, q1, tc2)).ok());

  // On the genesis QC while the TC reports a round-1 QC: refused (would
  // abandon a QC that some honest node may have locked on).
  EXPECT_FALSE(rules_.check_vote(c_.block(3, g, tc2)).ok());

  // A TC for the wrong round does not help.
  TimeoutCert tc1 = c_.tc(1, {{0, g}, {1, g}, {2, g}});
  EXPECT_FALSE(rules_.check_vote(c_.block(3, q1, tc1)).ok());
}

TEST_F(SafetyTest, ObserveKeepsTheHighest) {
  Block b1 = c_.block(1, genesis_qc(c_.genesis_id));
  QuorumCert q1 = c_.qc_for(b1);
  EXPECT_TRUE(rules_.observe_qc(q1));
  EXPECT_FALSE(rules_.observe_qc(genesis_qc(c_.genesis_id)));
  EXPECT_EQ(rules_.state().high_qc, q1);
  EXPECT_EQ(rules_.current_round(), 2u);
  TimeoutCert tc3 = c_.tc(3, {{0, q1}, {1, q1}, {2, q1}});
  EXPECT_TRUE(rules_.observe_tc(tc3));
  EXPECT_FALSE(rules_.observe_tc(tc3));
  EXPECT_EQ(rules_.current_round(), 4u);
}

// --- Certificates ---

TEST_F(SafetyTest, QcNeedsAQuorumOfDistinctKnownValidSigners) {
  Hash256 id = c_.block(1, genesis_qc(c_.genesis_id)).id();
  EXPECT_TRUE(verify_qc(c_.qc(id, 1, {0, 1, 2}), validators_).ok());
  EXPECT_TRUE(verify_qc(c_.qc(id, 1, {0, 1, 2, 3}), validators_).ok());

  Status too_few = verify_qc(c_.qc(id, 1, {0, 1}), validators_);
  EXPECT_EQ(too_few.code(), ErrorCode::kInvalidArgument);

  QuorumCert dup = c_.qc(id, 1, {0, 1, 1});
  EXPECT_EQ(verify_qc(dup, validators_).code(), ErrorCode::kMalformed);

  QuorumCert unsorted = c_.qc(id, 1, {1, 0, 2});
  EXPECT_EQ(verify_qc(unsorted, validators_).code(), ErrorCode::kMalformed);

  QuorumCert unknown = c_.qc(id, 1, {0, 1, 2});
  unknown.signatures.emplace_back(7, Bytes(64, 1));
  EXPECT_EQ(verify_qc(unknown, validators_).code(), ErrorCode::kUnknownKey);

  QuorumCert bad = c_.qc(id, 1, {0, 1, 2});
  bad.signatures[1].second[5] ^= 1;
  EXPECT_EQ(verify_qc(bad, validators_).code(), ErrorCode::kBadSignature);

  QuorumCert wrong_round = c_.qc(id, 1, {0, 1, 2});
  wrong_round.round = 2;  // signatures bind the round
  EXPECT_EQ(verify_qc(wrong_round, validators_).code(), ErrorCode::kBadSignature);

  QuorumCert swapped = c_.qc(id, 1, {0, 1, 2});
  std::swap(swapped.signatures[0].second, swapped.signatures[1].second);
  EXPECT_EQ(verify_qc(swapped, validators_).code(), ErrorCode::kBadSignature);
}

TEST_F(SafetyTest, OnlyTheGenesisQcMayBeUnsigned) {
  EXPECT_TRUE(verify_qc(genesis_qc(c_.genesis_id), validators_).ok());
  Hash256 other{};
  EXPECT_FALSE(verify_qc(genesis_qc(other), validators_).ok());
  QuorumCert empty_round1 = genesis_qc(c_.genesis_id);
  empty_round1.round = 1;
  EXPECT_FALSE(verify_qc(empty_round1, validators_).ok());
}

TEST_F(SafetyTest, TcChecksQuorumSignersRoundBindingAndHighestQc) {
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block b1 = c_.block(1, g);
  QuorumCert q1 = c_.qc_for(b1);
  TimeoutCert good = c_.tc(2, {{0, q1}, {1, g}, {3, q1}});
  EXPECT_TRUE(verify_tc(good, validators_).ok());

  EXPECT_FALSE(verify_tc(c_.tc(2, {{0, q1}, {1, g}}), validators_).ok()) << "too few";

  TimeoutCert dup = c_.tc(2, {{0, q1}, {0, q1}, {1, q1}});
  EXPECT_EQ(verify_tc(dup, validators_).code(), ErrorCode::kMalformed);

  TimeoutCert unknown = c_.tc(2, {{0, q1}, {1, q1}, {2, q1}});
  unknown.signatures[2].node = 9;
  EXPECT_EQ(verify_tc(unknown, validators_).code(), ErrorCode::kUnknownKey);

  TimeoutCert lied_round = good;  // a signature binds its high_qc_round
  lied_round.signatures[1].high_qc_round = 1;
  EXPECT_EQ(verify_tc(lied_round, validators_).code(), ErrorCode::kBadSignature);

  TimeoutCert low_qc = good;  // the carried QC must be the highest
  low_qc.high_qc = g;
  EXPECT_FALSE(verify_tc(low_qc, validators_).ok());

  TimeoutCert bad_qc = good;
  bad_qc.high_qc.signatures[0].second[0] ^= 1;
  EXPECT_EQ(verify_tc(bad_qc, validators_).code(), ErrorCode::kBadSignature);

  TimeoutCert bad_sig = good;
  bad_sig.signatures[0].signature[0] ^= 1;
  EXPECT_EQ(verify_tc(bad_sig, validators_).code(), ErrorCode::kBadSignature);
}

TEST_F(SafetyTest, VotesTimeoutsAndBlocksAreVerified) {
  QuorumCert g = genesis_qc(c_.genesis_id);
  Block b1 = c_.block(1, g);
  EXPECT_TRUE(verify_block(b1, validators_).ok());

  Vote v = make_vote(b1.id(), 1, 2, c_.keys[2]);
  EXPECT_TRUE(verify_vote(v, validators_).ok());
  Vote forged = v;
  forged.voter = 3;
  EXPECT_EQ(verify_vote(forged, validators_).code(), ErrorCode::kBadSignature);
  forged.voter = 4;
  EXPECT_EQ(verify_vote(forged, validators_).code(), ErrorCode::kUnknownKey);

  Timeout t = make_timeout(2, c_.qc_for(b1), std::nullopt, 1, c_.keys[1]);
  EXPECT_TRUE(verify_timeout(t, validators_).ok());
  Timeout lie = t;
  lie.high_qc = g;  // claims a lower QC than it signed
  EXPECT_FALSE(verify_timeout(lie, validators_).ok());
  Timeout wrong_tc = make_timeout(3, g, c_.tc(1, {{0, g}, {1, g}, {2, g}}), 1, c_.keys[1]);
  EXPECT_FALSE(verify_timeout(wrong_tc, validators_).ok()) << "last TC must be for round - 1";

  Block resigned = b1;
  resigned.author = 2;  // not the signer
  EXPECT_EQ(verify_block(resigned, validators_).code(), ErrorCode::kBadSignature);
  Block edited = b1;
  edited.payload.push_back(to_bytes("smuggled"));
  EXPECT_EQ(verify_block(edited, validators_).code(), ErrorCode::kBadSignature);
  Block bad_parent = b1;
  bad_parent.parent_id[0] ^= 1;
  EXPECT_FALSE(verify_block(bad_parent, validators_).ok());
  Block skip = c_.block(3, c_.qc_for(b1));  // skips round 2 without a TC
  EXPECT_FALSE(verify_block(skip, validators_).ok());
}

}  // namespace
}  // namespace custos::consensus
