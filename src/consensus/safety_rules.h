// Safety rules of Jolteon, kept apart from the pacemaker and the block tree so
// that liveness changes cannot weaken them.
//
// Contract:
// - SafetyState is everything that must be on disk (synced) before a vote or
//   timeout that depends on it leaves the node; a node that forgets it after a
//   crash could vote twice in one round.
// - SafetyRules only decides and records; it never verifies signatures. The
//   caller passes blocks and certificates it has already verified
//   (consensus/certs.h).
// - Voting rule for block B: B.round > last_voted_round, B.round >
//   highest_timeout_round, and either B.round == B.qc.round + 1, or B carries
//   a TC with B.round == tc.round + 1 and B.qc.round >= the TC's highest
//   high_qc_round.
// - Timeout rule: a timeout for round r is signed only when r >=
//   last_voted_round and r >= highest_timeout_round (re-sending r is allowed);
//   after it, no vote in round r.
#pragma once

#include <cstdint>
#include <optional>

#include "consensus/types.h"
#include "core/status.h"

namespace custos::consensus {

struct SafetyState {
  uint64_t last_voted_round = 0;
  uint64_t highest_timeout_round = 0;
  QuorumCert high_qc;  // highest QC seen
  std::optional<TimeoutCert> high_tc;
  bool operator==(const SafetyState&) const = default;

  // CBOR ["custos-safety-v1", last_voted_round, highest_timeout_round,
  // high_qc, high_tc / null].
  Bytes encode() const;
  static Result<SafetyState> decode(ByteView bytes);
};

class SafetyRules {
 public:
  explicit SafetyRules(SafetyState state) : state_(std::move(state)) {}

  const SafetyState& state() const { return state_; }

  // Ok when the voting rule allows a vote for `block`; kConflict naming the
  // rule otherwise. Does not record anything.
  Status check_vote(const Block& block) const;
  // check_vote, then records block.round as voted.
  Status record_vote(const Block& block);

  // Ok when a timeout for `round` may be signed; kConflict otherwise.
  Status check_timeout(uint64_t round) const;
  // check_timeout, then records round as timed out (no vote in it after).
  Status record_timeout(uint64_t round);

  // Keep the highest QC / TC seen. Return true when the state changed.
  bool observe_qc(const QuorumCert& qc);
  bool observe_tc(const TimeoutCert& tc);

  // max(high_qc.round, high_tc.round) + 1: the round this node is in.
  uint64_t current_round() const;

 private:
  SafetyState state_;
};

}  // namespace custos::consensus
