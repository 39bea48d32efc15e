// Shared helpers for the consensus unit tests: a fixed set of validator keys
// and builders for signed blocks, QCs and TCs, so tests can play the other
// validators by hand.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "consensus/replica.h"
#include "consensus/types.h"
#include "crypto/keys.h"

namespace custos::consensus::testing {

inline Hash256 ledger_hash() {
  Hash256 h{};
  h.fill(0x42);
  return h;
}

struct Committee {
  explicit Committee(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      auto k = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519);
      EXPECT_TRUE(k.ok());
      keys.push_back(*k);
      publics.push_back(k->public_key());
    }
    genesis = genesis_block(ledger_hash());
    genesis_id = genesis.id();
  }

  size_t n() const { return keys.size(); }

  Config config(NodeIndex self) const {
    Config c;
    c.genesis_id = genesis_id;
    c.validators = publics;
    c.self = self;
    c.key = keys[self];
    return c;
  }

  // A QC for (block_id, round) signed by the given nodes (ascending).
  QuorumCert qc(const Hash256& block_id, uint64_t round, std::vector<NodeIndex> signers) const {
    QuorumCert q;
    q.block_id = block_id;
    q.round = round;
    for (NodeIndex i : signers) {
      q.signatures.emplace_back(i, keys[i].sign(vote_signing_bytes(block_id, round)));
    }
    return q;
  }
  QuorumCert qc_for(const Block& b) const { return qc(b.id(), b.round, first_quorum()); }

  std::vector<NodeIndex> first_quorum() const {
    std::vector<NodeIndex> v;
    for (NodeIndex i = 0; i < quorum(); ++i) v.push_back(i);
    return v;
  }
  size_t quorum() const { return n() - (n() - 1) / 3; }

  // A TC for round from the given (node, high_qc) pairs; high_qc is the max.
  TimeoutCert tc(uint64_t round, const std::vector<std::pair<NodeIndex, QuorumCert>>& from) const {
    TimeoutCert t;
    t.round = round;
    for (const auto& [i, q] : from) {
      t.signatures.push_back(
          TimeoutSignature{i, q.round, keys[i].sign(timeout_signing_bytes(round, q.round))});
      if (q.round >= t.high_qc.round) t.high_qc = q;
    }
    return t;
  }

  // A block by leader(round) on `parent` certified by `qc`.
  Block block(uint64_t round, const QuorumCert& qc, std::optional<TimeoutCert> tc = std::nullopt,
              std::vector<Bytes> payload = {}, uint64_t time_ms = 0) const {
    Block b;
    b.round = round;
    b.parent_id = qc.block_id;
    b.qc = qc;
    b.tc = std::move(tc);
    b.author = static_cast<NodeIndex>(round % n());
    b.time_ms = time_ms;
    b.payload = std::move(payload);
    sign_block(b, keys[b.author]);
    return b;
  }

  std::vector<crypto::PrivateKey> keys;
  std::vector<crypto::PublicKey> publics;
  Block genesis;
  Hash256 genesis_id{};
};

}  // namespace custos::consensus::testing
