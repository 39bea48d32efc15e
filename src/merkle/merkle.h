// RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing and proofs,
// section 2.1. Pure algorithms over an abstract store of perfect-subtree
// hashes, so the same code serves RocksDB, memory and tests.
//
// Vocabulary: the perfect subtree (level, index) covers leaves
// [index * 2^level, (index + 1) * 2^level); level 0 is a leaf hash.
// MTH(D[a:b]) is the RFC's Merkle Tree Hash of leaves a..b-1.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"

namespace custos::merkle {

using Hash = Hash256;

// SHA-256(0x00 || entry)
Hash leaf_hash(ByteView entry);
// SHA-256(0x01 || left || right)
Hash node_hash(const Hash& left, const Hash& right);
// MTH of the empty tree: SHA-256 of the empty string.
Hash empty_root();

// Reads stored perfect-subtree hashes. Implementations may fail (I/O).
class NodeReader {
 public:
  virtual ~NodeReader() = default;
  virtual Result<Hash> perfect_subtree(uint32_t level, uint64_t index) = 0;
};

// MTH(D[0:tree_size]). O(log n) reads.
Result<Hash> root(NodeReader& nodes, uint64_t tree_size);

// PATH(leaf_index, D[0:tree_size]) per RFC 9162 2.1.3.1. O(log n) reads.
Result<std::vector<Hash>> inclusion_proof(NodeReader& nodes, uint64_t leaf_index,
                                          uint64_t tree_size);

// PROOF(size1, D[0:size2]) per RFC 9162 2.1.4.1; empty for size1 == size2.
// Requires 0 < size1 <= size2 (kInvalidArgument otherwise). O(log n) reads.
Result<std::vector<Hash>> consistency_proof(NodeReader& nodes, uint64_t size1, uint64_t size2);

// RFC 9162 2.1.3.2: the root implied by a leaf hash and its inclusion proof,
// or kInvalidArgument/kBadSignature-free error kMalformed when the proof has
// the wrong shape for (leaf_index, tree_size).
Result<Hash> root_from_inclusion_proof(const Hash& leaf, uint64_t leaf_index, uint64_t tree_size,
                                       const std::vector<Hash>& proof);

// RFC 9162 2.1.4.2: Ok when `proof` shows root1 (size1) is a prefix of
// root2 (size2); kMalformed otherwise, with the reason.
Status verify_consistency(uint64_t size1, uint64_t size2, const Hash& root1, const Hash& root2,
                          const std::vector<Hash>& proof);

// The right edge of a growing tree: the perfect subtrees that make up
// D[0:size] (one per set bit of size). O(log n) memory. Appending a leaf
// yields the perfect-subtree hashes it completes, which the caller stores.
class Frontier {
 public:
  struct NewNode {
    uint32_t level;
    uint64_t index;
    Hash hash;
  };

  Frontier() = default;
  // Rebuilds the frontier of a stored tree of `size` leaves.
  static Result<Frontier> load(NodeReader& nodes, uint64_t size);

  uint64_t size() const { return size_; }
  // Appends a leaf hash; calls `store` for the leaf (level 0) and every
  // perfect subtree it completes, lowest level first.
  void append(const Hash& leaf, const std::function<void(const NewNode&)>& store);
  // MTH(D[0:size]) from the frontier alone, no reads.
  Hash root() const;

 private:
  uint64_t size_ = 0;
  std::vector<Hash> peaks_;  // perfect subtrees, largest (leftmost) first
};

// In-memory NodeReader, for tests and verification tools.
class MemoryTree : public NodeReader {
 public:
  void append(ByteView entry);
  void append_leaf_hash(const Hash& leaf);
  uint64_t size() const { return frontier_.size(); }
  Hash root() const { return frontier_.root(); }
  Result<Hash> perfect_subtree(uint32_t level, uint64_t index) override;
  uint64_t reads() const { return reads_; }  // for O(log n) tests

 private:
  Frontier frontier_;
  std::vector<std::vector<Hash>> levels_;
  uint64_t reads_ = 0;
};

}  // namespace custos::merkle
