// Property tests: the store-backed, O(log n) algorithms against a naive
// implementation written straight from the RFC 9162 2.1 definitions over the
// full list of leaves.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <bit>
#include <string>
#include <vector>

#include "merkle/merkle.h"

namespace custos::merkle {
namespace {

// --- Naive reference, one function per RFC definition ---------------------

using Leaves = std::vector<Hash>;  // leaf hashes, already HASH(0x00 || d)

// k: the largest power of two smaller than n (n > 1).
uint64_t RfcSplit(uint64_t n) {
  uint64_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

// MTH(D[begin:end]).
Hash NaiveMth(const Leaves& d, uint64_t begin, uint64_t end) {
  const uint64_t n = end - begin;
  if (n == 0) return empty_root();
  if (n == 1) return d[begin];
  const uint64_t k = RfcSplit(n);
  return node_hash(NaiveMth(d, begin, begin + k), NaiveMth(d, begin + k, end));
}

// PATH(m, D[begin:end]).
std::vector<Hash> NaivePath(const Leaves& d, uint64_t m, uint64_t begin, uint64_t end) {
  const uint64_t n = end - begin;
  if (n == 1) return {};
  const uint64_t k = RfcSplit(n);
  std::vector<Hash> path;
  if (m < k) {
    path = NaivePath(d, m, begin, begin + k);
    path.push_back(NaiveMth(d, begin + k, end));
  } else {
    path = NaivePath(d, m - k, begin + k, end);
    path.push_back(NaiveMth(d, begin, begin + k));
  }
  return path;
}

// SUBPROOF(m, D[begin:end], b).
std::vector<Hash> NaiveSubproof(const Leaves& d, uint64_t m, uint64_t begin, uint64_t end, bool b) {
  const uint64_t n = end - begin;
  if (m == n) {
    if (b) return {};
    return {NaiveMth(d, begin, end)};
  }
  const uint64_t k = RfcSplit(n);
  std::vector<Hash> proof;
  if (m <= k) {
    proof = NaiveSubproof(d, m, begin, begin + k, b);
    proof.push_back(NaiveMth(d, begin + k, end));
  } else {
    proof = NaiveSubproof(d, m - k, begin + k, end, false);
    proof.push_back(NaiveMth(d, begin, begin + k));
  }
  return proof;
}

// --- Fixtures ------------------------------------------------------------------

// Leaf i of the tree for `seed`: distinct entries, so distinct leaf hashes.
Bytes Entry(uint64_t seed, uint64_t i) {
  Bytes entry = to_bytes("entry-");
  append_be64(entry, seed);
  append_be64(entry, i);
  return entry;
}

struct Fixture {
  Leaves leaves;
  MemoryTree tree;
};

Fixture Build(uint64_t seed, uint64_t n) {
  Fixture f;
  for (uint64_t i = 0; i < n; ++i) {
    Bytes e = Entry(seed, i);
    f.leaves.push_back(leaf_hash(e));
    f.tree.append(e);
  }
  return f;
}

Hash Flip(Hash h, size_t byte) {
  h[byte % h.size()] ^= 0x40;
  return h;
}

rc::Gen<uint64_t> TreeSize() {
  return rc::gen::inRange<uint64_t>(1, 2001);
}

// --- Properties ----------------------------------------------------------------

RC_GTEST_PROP(MerkleProperty, RootAgreesWithNaiveMth, (uint64_t seed)) {
  const uint64_t n = *TreeSize();
  Fixture f = Build(seed, n);
  const Hash want = NaiveMth(f.leaves, 0, n);
  auto got = root(f.tree, n);
  RC_ASSERT(got.ok());
  RC_ASSERT(*got == want);
  RC_ASSERT(f.tree.root() == want);
  // A store holding a longer tree answers for every prefix.
  const uint64_t m = *rc::gen::inRange<uint64_t>(1, n + 1);
  auto prefix = root(f.tree, m);
  RC_ASSERT(prefix.ok());
  RC_ASSERT(*prefix == NaiveMth(f.leaves, 0, m));
}

RC_GTEST_PROP(MerkleProperty, InclusionProofsMatchNaivePathAndVerify, (uint64_t seed)) {
  const uint64_t n = *TreeSize();
  const uint64_t i = *rc::gen::inRange<uint64_t>(0, n);
  Fixture f = Build(seed, n);
  auto proof = inclusion_proof(f.tree, i, n);
  RC_ASSERT(proof.ok());
  RC_ASSERT(*proof == NaivePath(f.leaves, i, 0, n));
  auto r = root_from_inclusion_proof(f.leaves[i], i, n, *proof);
  RC_ASSERT(r.ok());
  RC_ASSERT(*r == NaiveMth(f.leaves, 0, n));
}

RC_GTEST_PROP(MerkleProperty, InclusionProofIsBoundToItsIndexAndLeaf, (uint64_t seed)) {
  const uint64_t n = *rc::gen::inRange<uint64_t>(2, 2001);
  const uint64_t i = *rc::gen::inRange<uint64_t>(0, n);
  const uint64_t j = *rc::gen::distinctFrom(rc::gen::inRange<uint64_t>(0, n), i);
  Fixture f = Build(seed, n);
  const Hash want = *root(f.tree, n);
  auto proof = inclusion_proof(f.tree, i, n);
  RC_ASSERT(proof.ok());
  auto rejected = [&](const Hash& leaf, uint64_t index, const std::vector<Hash>& p) {
    auto r = root_from_inclusion_proof(leaf, index, n, p);
    return !r.ok() || *r != want;
  };
  RC_ASSERT(rejected(f.leaves[i], j, *proof));  // same leaf, other index
  RC_ASSERT(rejected(f.leaves[j], i, *proof));  // other leaf, same index
  RC_ASSERT(rejected(f.leaves[j], j, *proof));  // other leaf at its own index
  if (!proof->empty()) {
    const size_t k = *rc::gen::inRange<size_t>(0, proof->size());
    auto tampered = *proof;
    tampered[k] = Flip(tampered[k], *rc::gen::inRange<size_t>(0, 32));
    RC_ASSERT(rejected(f.leaves[i], i, tampered));
  }
}

RC_GTEST_PROP(MerkleProperty, ConsistencyProofsMatchNaiveAndVerify, (uint64_t seed)) {
  const uint64_t n = *TreeSize();
  const uint64_t m = *rc::gen::inRange<uint64_t>(1, n + 1);
  Fixture f = Build(seed, n);
  auto proof = consistency_proof(f.tree, m, n);
  RC_ASSERT(proof.ok());
  RC_ASSERT(*proof == NaiveSubproof(f.leaves, m, 0, n, true));
  const Hash root1 = NaiveMth(f.leaves, 0, m);
  const Hash root2 = NaiveMth(f.leaves, 0, n);
  Status ok = verify_consistency(m, n, root1, root2, *proof);
  RC_ASSERT(ok.ok());

  const size_t byte = *rc::gen::inRange<size_t>(0, 32);
  RC_ASSERT(!verify_consistency(m, n, Flip(root1, byte), root2, *proof).ok());
  RC_ASSERT(!verify_consistency(m, n, root1, Flip(root2, byte), *proof).ok());
  if (!proof->empty()) {
    const size_t k = *rc::gen::inRange<size_t>(0, proof->size());
    auto tampered = *proof;
    tampered[k] = Flip(tampered[k], byte);
    RC_ASSERT(!verify_consistency(m, n, root1, root2, tampered).ok());
  }
}

RC_GTEST_PROP(MerkleProperty, ConsistencyFailsAgainstAnUnrelatedTree, (uint64_t seed)) {
  // Same sizes, different second tree: the old root is not its prefix.
  const uint64_t n = *rc::gen::inRange<uint64_t>(2, 2001);
  const uint64_t m = *rc::gen::inRange<uint64_t>(1, n);
  Fixture f = Build(seed, n);
  Fixture other = Build(seed + 1, n);
  auto proof = consistency_proof(other.tree, m, n);
  RC_ASSERT(proof.ok());
  RC_ASSERT(!verify_consistency(m, n, *root(f.tree, m), *root(other.tree, n), *proof).ok());
}

RC_GTEST_PROP(MerkleProperty, LoadedFrontierMatchesIncrementalAppends, (uint64_t seed)) {
  const uint64_t n = *rc::gen::inRange<uint64_t>(0, 2001);
  Fixture f = Build(seed, n);
  const uint64_t before = f.tree.reads();
  auto loaded = Frontier::load(f.tree, n);
  RC_ASSERT(loaded.ok());
  RC_ASSERT(f.tree.reads() - before == static_cast<uint64_t>(std::popcount(n)));
  RC_ASSERT(loaded->size() == n);
  RC_ASSERT(loaded->root() == f.tree.root());
  RC_ASSERT(loaded->root() == NaiveMth(f.leaves, 0, n));

  // Both frontiers keep agreeing, and emit the same nodes, as they grow.
  Frontier incremental;
  for (const Hash& leaf : f.leaves) incremental.append(leaf, [](const Frontier::NewNode&) {});
  const uint64_t extra = *rc::gen::inRange<uint64_t>(0, 40);
  for (uint64_t i = 0; i < extra; ++i) {
    const Hash leaf = leaf_hash(Entry(seed, n + i));
    std::vector<Frontier::NewNode> a;
    std::vector<Frontier::NewNode> b;
    loaded->append(leaf, [&](const Frontier::NewNode& node) { a.push_back(node); });
    incremental.append(leaf, [&](const Frontier::NewNode& node) { b.push_back(node); });
    RC_ASSERT(a.size() == b.size());
    RC_ASSERT(a.size() == static_cast<size_t>(1 + std::countr_one(n + i)));
    for (size_t k = 0; k < a.size(); ++k) {
      RC_ASSERT(a[k].level == k);
      RC_ASSERT(a[k].level == b[k].level);
      RC_ASSERT(a[k].index == b[k].index);
      RC_ASSERT(a[k].hash == b[k].hash);
    }
    RC_ASSERT(loaded->root() == incremental.root());
  }
}

RC_GTEST_PROP(MerkleProperty, VerifiersNeverAcceptGarbageShapes,
              (uint64_t leaf_index, uint64_t tree_size, uint64_t size1, uint64_t size2)) {
  // Arbitrary sizes over the full 64-bit range and arbitrary proof lengths:
  // the verifiers must return, never crash or hang, and all-zero hashes never
  // form a valid proof of an unrelated root.
  const size_t len = *rc::gen::inRange<size_t>(0, 130);
  const std::vector<Hash> proof(len, Hash{});
  const Hash leaf = leaf_hash(to_bytes("x"));
  auto r = root_from_inclusion_proof(leaf, leaf_index, tree_size, proof);
  if (!r.ok()) RC_ASSERT(r.status().code() == ErrorCode::kMalformed);
  Status s = verify_consistency(size1, size2, leaf, empty_root(), proof);
  RC_ASSERT(!s.ok());
  RC_ASSERT(s.code() == ErrorCode::kMalformed);
}

}  // namespace
}  // namespace custos::merkle
