// Verification of everything signed in consensus messages.
//
// Contract: each function returns Ok only when every signature it looks at
// verifies under the validator key at its index; otherwise kBadSignature,
// kUnknownKey (index out of range), kMalformed (unsorted / duplicate
// indexes, wrong shape) or kInvalidArgument (too few signatures, rule broken),
// with a message. Inputs may come straight from a peer.
#pragma once

#include <vector>

#include "consensus/types.h"
#include "core/status.h"
#include "crypto/keys.h"

namespace custos::consensus {

struct Validators {
  const std::vector<crypto::PublicKey>* keys = nullptr;  // index = NodeIndex
  Hash256 genesis_id{};
  size_t size() const { return keys->size(); }
};

// >= quorum_size(n) distinct, ascending, known indexes with valid vote
// signatures; or exactly the genesis QC (round 0, genesis id, no signatures).
Status verify_qc(const QuorumCert& qc, const Validators& validators);
// >= quorum_size(n) distinct, ascending, known nodes, each signature binding
// (round, high_qc_round); no high_qc_round >= round; and tc.high_qc is a
// valid QC whose round is the highest high_qc_round.
Status verify_tc(const TimeoutCert& tc, const Validators& validators);
// The timeout's own signature, its high QC, its last TC (which must be for
// round - 1), and high_qc.round < round.
Status verify_timeout(const Timeout& timeout, const Validators& validators);
Status verify_vote(const Vote& vote, const Validators& validators);
// Author signature, author index, QC (certifying parent_id, round below the
// block's), TC (for round - 1, only when the QC is not for round - 1), and the
// payload limits. Does not check the voting rule or time.
Status verify_block(const Block& block, const Validators& validators);

}  // namespace custos::consensus
