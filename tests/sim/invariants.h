// Safety invariants of the simulated cluster, checked after every event.
//
// Contract: the checkers only see what honest replicas commit and execute
// (Byzantine instances are never registered). A violation comes back as a
// Status (kCorruption) whose message names the instances, heights and block
// ids involved; the checkers never assert on what replicas report.
//
// CommitChecker: height h is the position in a replica's committed sequence
// (genesis = 0). Across honest replicas, at most one block per height (the
// first one seen is the reference); every sequence is a prefix of the
// reference; rounds strictly increase; each block's parent_id is its
// predecessor. A crash truncates a replica's sequence to what its ledger had
// synced; re-commits after restart must agree with the reference again.
//
// ReceiptChecker: each honest replica's executed items form an RFC 9162 tree;
// for every pair of replicas the roots over their common prefix are equal and
// an inclusion proof for a random item from one verifies against the other's
// root.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "merkle/merkle.h"
#include "sim/network.h"

namespace custos::sim {

struct CommitRecord {
  Hash256 id{};
  Hash256 parent_id{};
  uint64_t round = 0;
};

class CommitChecker {
 public:
  // Every registered instance starts with `genesis` at height 0.
  void set_genesis(const CommitRecord& genesis) { genesis_ = genesis; }
  void track(InstanceId instance);
  bool tracks(InstanceId instance) const { return chains_.count(instance) > 0; }

  // Appends at height = current length; checks chaining, round order and
  // agreement with the reference chain.
  Status on_commit(InstanceId instance, const CommitRecord& block);
  // After a crash: keep heights [0, length) (length >= 1 keeps genesis).
  void truncate(InstanceId instance, size_t length);
  // Every tracked sequence is a prefix of the reference chain.
  Status check_prefixes() const;

  // Length of the instance's sequence including genesis.
  size_t length(InstanceId instance) const;
  size_t reference_length() const { return reference_.size(); }

 private:
  CommitRecord genesis_;
  std::map<InstanceId, std::vector<CommitRecord>> chains_;
  std::vector<CommitRecord> reference_;  // heights >= 1; [h-1] is height h
  std::vector<InstanceId> reference_by_;
};

class ReceiptChecker {
 public:
  void track(InstanceId instance);
  void append(InstanceId instance, ByteView item);
  // Keeps the first `size` items (rebuilds the tree).
  void truncate(InstanceId instance, size_t size);
  size_t size(InstanceId instance) const;
  const Bytes& item(InstanceId instance, size_t index) const;

  // All pairs; `rng` picks the item to prove (the checker's own PRNG, so
  // checking does not perturb the scenario).
  Status check(std::mt19937_64& rng);

 private:
  struct Log {
    std::vector<Bytes> items;
    merkle::MemoryTree tree;
  };
  Status check_pair(InstanceId a, Log& log_a, InstanceId b, Log& log_b, std::mt19937_64& rng);

  std::map<InstanceId, Log> logs_;
};

}  // namespace custos::sim
