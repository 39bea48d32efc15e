#include "consensus/certs.h"

#include <string>

#include "core/quorum.h"

namespace custos::consensus {

namespace {

Status invalid(const std::string& what) {
  return error(ErrorCode::kInvalidArgument, "consensus: " + what);
}

// Index known, and strictly above the previous one (so distinct and sorted).
Status check_signer(NodeIndex index, std::optional<NodeIndex> previous,
                    const Validators& validators, const char* what) {
  if (index >= validators.size()) {
    return error(ErrorCode::kUnknownKey, std::string("consensus: ") + what + " signer " +
                                             std::to_string(index) + " is not a validator");
  }
  if (previous && index <= *previous) {
    return error(ErrorCode::kMalformed,
                 std::string("consensus: ") + what + " signers must be distinct and ascending");
  }
  return Status();
}

Status check_quorum(size_t count, const Validators& validators, const char* what) {
  size_t needed = quorum_size(validators.size());
  if (count < needed) {
    return invalid(std::string(what) + " has " + std::to_string(count) + " signatures, quorum is " +
                   std::to_string(needed));
  }
  return Status();
}

}  // namespace

Status verify_qc(const QuorumCert& qc, const Validators& validators) {
  if (qc.signatures.empty() && qc.round == 0 && qc.block_id == validators.genesis_id) {
    return Status();  // the genesis QC
  }
  if (qc.round == 0) return invalid("only the genesis QC may have round 0");
  CUSTOS_RETURN_IF_ERROR(check_quorum(qc.signatures.size(), validators, "qc"));
  Bytes signed_bytes = vote_signing_bytes(qc.block_id, qc.round);
  std::optional<NodeIndex> previous;
  for (const auto& [index, sig] : qc.signatures) {
    CUSTOS_RETURN_IF_ERROR(check_signer(index, previous, validators, "qc"));
    previous = index;
  }
  for (const auto& [index, sig] : qc.signatures) {
    CUSTOS_RETURN_IF_ERROR((*validators.keys)[index].verify(signed_bytes, sig));
  }
  return Status();
}

Status verify_tc(const TimeoutCert& tc, const Validators& validators) {
  if (tc.round == 0) return invalid("a TC cannot be for round 0");
  CUSTOS_RETURN_IF_ERROR(check_quorum(tc.signatures.size(), validators, "tc"));
  std::optional<NodeIndex> previous;
  for (const auto& s : tc.signatures) {
    CUSTOS_RETURN_IF_ERROR(check_signer(s.node, previous, validators, "tc"));
    previous = s.node;
    if (s.high_qc_round >= tc.round) return invalid("tc: high_qc_round not below the round");
  }
  if (tc.high_qc.round != tc.max_high_qc_round()) {
    return invalid("tc: its high QC is not the highest among its timeouts");
  }
  for (const auto& s : tc.signatures) {
    CUSTOS_RETURN_IF_ERROR((*validators.keys)[s.node].verify(
        timeout_signing_bytes(tc.round, s.high_qc_round), s.signature));
  }
  return verify_qc(tc.high_qc, validators);
}

Status verify_vote(const Vote& vote, const Validators& validators) {
  CUSTOS_RETURN_IF_ERROR(check_signer(vote.voter, std::nullopt, validators, "vote"));
  if (vote.round == 0) return invalid("a vote cannot be for round 0");
  return (*validators.keys)[vote.voter].verify(vote_signing_bytes(vote.block_id, vote.round),
                                               vote.signature);
}

Status verify_timeout(const Timeout& timeout, const Validators& validators) {
  CUSTOS_RETURN_IF_ERROR(check_signer(timeout.voter, std::nullopt, validators, "timeout"));
  if (timeout.round == 0) return invalid("a timeout cannot be for round 0");
  if (timeout.high_qc.round >= timeout.round) return invalid("timeout: high QC not below round");
  if (timeout.last_tc && timeout.last_tc->round + 1 != timeout.round) {
    return invalid("timeout: last TC is not for the previous round");
  }
  CUSTOS_RETURN_IF_ERROR((*validators.keys)[timeout.voter].verify(
      timeout_signing_bytes(timeout.round, timeout.high_qc.round), timeout.signature));
  CUSTOS_RETURN_IF_ERROR(verify_qc(timeout.high_qc, validators));
  if (timeout.last_tc) CUSTOS_RETURN_IF_ERROR(verify_tc(*timeout.last_tc, validators));
  return Status();
}

Status verify_block(const Block& block, const Validators& validators) {
  if (block.author >= validators.size()) {
    return error(ErrorCode::kUnknownKey, "consensus: block author is not a validator");
  }
  if (block.round == 0) return invalid("only genesis has round 0");
  if (block.qc.block_id != block.parent_id) return invalid("block: QC does not certify the parent");
  if (block.qc.round >= block.round) return invalid("block: QC round not below the block round");
  if (block.qc.round + 1 != block.round) {
    if (!block.tc) return invalid("block: skips rounds without a TC");
    if (block.tc->round + 1 != block.round) return invalid("block: TC is not for round - 1");
  } else if (block.tc) {
    return invalid("block: carries a TC although its QC is for round - 1");
  }
  if (block.payload.size() > kBlockItemsMax || block.payload_bytes() > kBlockBytesMax) {
    return error(ErrorCode::kTooLarge, "consensus: block payload over the limits");
  }
  CUSTOS_RETURN_IF_ERROR(
      (*validators.keys)[block.author].verify(block_signing_bytes(block.id()), block.signature));
  CUSTOS_RETURN_IF_ERROR(verify_qc(block.qc, validators));
  if (block.tc) CUSTOS_RETURN_IF_ERROR(verify_tc(*block.tc, validators));
  return Status();
}

}  // namespace custos::consensus
