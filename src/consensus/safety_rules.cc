#include "consensus/safety_rules.h"

#include <algorithm>
#include <string>

namespace custos::consensus {

namespace {
Status refuse(const std::string& why) {
  return error(ErrorCode::kConflict, "safety rules: " + why);
}
}  // namespace

Status SafetyRules::check_vote(const Block& block) const {
  if (block.round <= state_.last_voted_round) {
    return refuse("already voted in round " + std::to_string(state_.last_voted_round));
  }
  if (block.round <= state_.highest_timeout_round) {
    return refuse("timed out in round " + std::to_string(state_.highest_timeout_round));
  }
  if (block.round == block.qc.round + 1) return Status();
  if (block.tc && block.round == block.tc->round + 1 &&
      block.qc.round >= block.tc->max_high_qc_round()) {
    return Status();
  }
  return refuse("block neither extends the previous round's QC nor the TC's highest QC");
}

Status SafetyRules::record_vote(const Block& block) {
  CUSTOS_RETURN_IF_ERROR(check_vote(block));
  state_.last_voted_round = block.round;
  return Status();
}

Status SafetyRules::check_timeout(uint64_t round) const {
  if (round < state_.last_voted_round) return refuse("timeout for a round below the last vote");
  if (round < state_.highest_timeout_round) return refuse("timeout for an older round");
  return Status();
}

Status SafetyRules::record_timeout(uint64_t round) {
  CUSTOS_RETURN_IF_ERROR(check_timeout(round));
  state_.highest_timeout_round = round;
  return Status();
}

bool SafetyRules::observe_qc(const QuorumCert& qc) {
  if (qc.round <= state_.high_qc.round) return false;
  state_.high_qc = qc;
  return true;
}

bool SafetyRules::observe_tc(const TimeoutCert& tc) {
  if (state_.high_tc && tc.round <= state_.high_tc->round) return false;
  state_.high_tc = tc;
  return true;
}

uint64_t SafetyRules::current_round() const {
  uint64_t tc_round = state_.high_tc ? state_.high_tc->round : 0;
  return std::max(state_.high_qc.round, tc_round) + 1;
}

}  // namespace custos::consensus
