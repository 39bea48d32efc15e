// RFC 9162 section 2.1 over stored perfect subtrees.
//
// Every range the RFC recursion visits, D[begin:begin+size), starts at a
// multiple of bit_ceil(size). Such a range splits into one perfect subtree
// per set bit of `size`, largest first, each aligned to its own size, and its
// MTH is the right fold node(P1, node(P2, ... Pk)). So a root costs
// popcount(n) reads, and a proof walk (which leaves the right edge of the
// tree at most once, after which every sibling is perfect) costs at most
// popcount(n) + log2(n) reads, with no memo table and no recursion.
#include "merkle/merkle.h"

#include <algorithm>
#include <bit>
#include <string>
#include <utility>

#include "crypto/hash.h"

namespace custos::merkle {

namespace {

constexpr uint8_t kLeafPrefix = 0x00;
constexpr uint8_t kNodePrefix = 0x01;

// The RFC's k: the largest power of two strictly below size (size >= 2).
uint64_t split_point(uint64_t size) {
  assert(size >= 2);
  return std::bit_floor(size - 1);
}

// Reads the perfect subtree covering [begin, begin + size); size is a power
// of two and begin a multiple of it.
Result<Hash> read_perfect(NodeReader& nodes, uint64_t begin, uint64_t size) {
  assert(std::has_single_bit(size) && begin % size == 0);
  const int level = std::countr_zero(size);
  return nodes.perfect_subtree(static_cast<uint32_t>(level), begin >> level);
}

// MTH(D[begin:end]) for a range aligned as described at the top of the file.
// Folds from the right end so no list of pieces is kept: the smallest piece
// (lowest set bit) is rightmost.
Result<Hash> range_hash(NodeReader& nodes, uint64_t begin, uint64_t end) {
  assert(begin < end);
  uint64_t remaining = end - begin;
  uint64_t pos = end;
  Hash acc{};
  bool first = true;
  while (remaining != 0) {
    const uint64_t piece = remaining & (~remaining + 1);  // lowest set bit
    remaining -= piece;
    pos -= piece;
    CUSTOS_ASSIGN_OR_RETURN(Hash h, read_perfect(nodes, pos, piece));
    acc = first ? h : node_hash(h, acc);
    first = false;
  }
  return acc;
}

std::string describe_sizes(uint64_t a, const char* a_name, uint64_t b, const char* b_name) {
  return std::string(a_name) + " " + std::to_string(a) + ", " + b_name + " " + std::to_string(b);
}

std::string index_out_of_range(uint64_t leaf_index, uint64_t tree_size) {
  return "inclusion proof: leaf index " + std::to_string(leaf_index) + " is not below tree size " +
         std::to_string(tree_size);
}

// Right-shifts both counters once: the RFC verifiers climb one level.
void climb(uint64_t& fn, uint64_t& sn) {
  fn >>= 1;
  sn >>= 1;
}

// Rounds of the RFC 9162 verifier loop (2.1.3.2 step 4, 2.1.4.2 step 6)
// from (fn, sn) until sn reaches 0, run without hashing; each round consumes
// one proof hash. Knowing the length up front lets a bad proof be refused
// with the exact reason instead of a bare root mismatch. At most 64 rounds:
// sn halves every round.
size_t verifier_rounds(uint64_t fn, uint64_t sn) {
  size_t rounds = 0;
  while (sn != 0) {
    if ((fn & 1) == 0 && fn == sn) {
      while ((fn & 1) == 0 && fn != 0) climb(fn, sn);
    }
    climb(fn, sn);
    ++rounds;
  }
  return rounds;
}

size_t inclusion_path_length(uint64_t leaf_index, uint64_t tree_size) {
  return verifier_rounds(leaf_index, tree_size - 1);
}

// For 0 < size1 < size2. When size1 is a power of two the verifier supplies
// the first hash itself (the old root), so the proof carries one fewer.
size_t consistency_proof_length(uint64_t size1, uint64_t size2) {
  uint64_t fn = size1 - 1;
  uint64_t sn = size2 - 1;
  while ((fn & 1) != 0) climb(fn, sn);
  return (std::has_single_bit(size1) ? 0 : 1) + verifier_rounds(fn, sn);
}

Status wrong_length(const char* what, size_t got, size_t want, const std::string& sizes) {
  return error(ErrorCode::kMalformed, std::string(what) + " has " + std::to_string(got) +
                                          " hashes, expected " + std::to_string(want) + " for " +
                                          sizes);
}

}  // namespace

Hash leaf_hash(ByteView entry) {
  crypto::Sha256 hasher;  // no allocation: a context on the stack
  const uint8_t prefix = kLeafPrefix;
  hasher.update(ByteView(&prefix, 1));
  hasher.update(entry);
  return hasher.finish();
}

Hash node_hash(const Hash& left, const Hash& right) {
  // A stack buffer and the one-shot hash: this runs on every append.
  std::array<uint8_t, 1 + 2 * sizeof(Hash)> buf;
  buf[0] = kNodePrefix;
  std::copy(left.begin(), left.end(), buf.begin() + 1);
  std::copy(right.begin(), right.end(), buf.begin() + 1 + left.size());
  return crypto::sha256(buf);
}

Hash empty_root() {
  return crypto::sha256(ByteView());
}

Result<Hash> root(NodeReader& nodes, uint64_t tree_size) {
  if (tree_size == 0) return empty_root();
  return range_hash(nodes, 0, tree_size);
}

Result<std::vector<Hash>> inclusion_proof(NodeReader& nodes, uint64_t leaf_index,
                                          uint64_t tree_size) {
  if (leaf_index >= tree_size) {
    return error(ErrorCode::kInvalidArgument, index_out_of_range(leaf_index, tree_size));
  }
  // Walk PATH top-down; the RFC lists siblings bottom-up, so reverse at the
  // end.
  std::vector<Hash> path;
  uint64_t begin = 0;
  uint64_t size = tree_size;
  while (size > 1) {
    const uint64_t k = split_point(size);
    if (leaf_index - begin < k) {
      CUSTOS_ASSIGN_OR_RETURN(Hash right, range_hash(nodes, begin + k, begin + size));
      path.push_back(right);
      size = k;
    } else {
      CUSTOS_ASSIGN_OR_RETURN(Hash left, read_perfect(nodes, begin, k));
      path.push_back(left);
      begin += k;
      size -= k;
    }
  }
  std::reverse(path.begin(), path.end());
  return path;
}

Result<std::vector<Hash>> consistency_proof(NodeReader& nodes, uint64_t size1, uint64_t size2) {
  if (size1 == 0 || size1 > size2) {
    return error(ErrorCode::kInvalidArgument, "consistency proof needs 0 < size1 <= size2, got " +
                                                  describe_sizes(size1, "size1", size2, "size2"));
  }
  // SUBPROOF(m, D[begin:begin+size], whole) unrolled; collected top-down,
  // reversed at the end like PATH.
  std::vector<Hash> proof;
  uint64_t m = size1;
  uint64_t begin = 0;
  uint64_t size = size2;
  bool whole = true;  // the RFC's boolean: D[0:m] is the old tree itself
  while (m != size) {
    const uint64_t k = split_point(size);
    if (m <= k) {
      CUSTOS_ASSIGN_OR_RETURN(Hash right, range_hash(nodes, begin + k, begin + size));
      proof.push_back(right);
      size = k;
    } else {
      CUSTOS_ASSIGN_OR_RETURN(Hash left, read_perfect(nodes, begin, k));
      proof.push_back(left);
      m -= k;
      begin += k;
      size -= k;
      whole = false;
    }
  }
  if (!whole) {
    CUSTOS_ASSIGN_OR_RETURN(Hash old_subtree, range_hash(nodes, begin, begin + size));
    proof.push_back(old_subtree);
  }
  std::reverse(proof.begin(), proof.end());
  return proof;
}

Result<Hash> root_from_inclusion_proof(const Hash& leaf, uint64_t leaf_index, uint64_t tree_size,
                                       const std::vector<Hash>& proof) {
  if (tree_size == 0) {
    return error(ErrorCode::kMalformed, "inclusion proof for an empty tree (tree size 0)");
  }
  if (leaf_index >= tree_size) {
    return error(ErrorCode::kMalformed, index_out_of_range(leaf_index, tree_size));
  }
  const size_t want = inclusion_path_length(leaf_index, tree_size);
  if (proof.size() != want) {
    return wrong_length("inclusion proof", proof.size(), want,
                        describe_sizes(leaf_index, "leaf index", tree_size, "tree size"));
  }
  uint64_t fn = leaf_index;
  uint64_t sn = tree_size - 1;
  Hash r = leaf;
  for (const Hash& p : proof) {
    if ((fn & 1) != 0 || fn == sn) {
      r = node_hash(p, r);
      while ((fn & 1) == 0 && fn != 0) climb(fn, sn);
    } else {
      r = node_hash(r, p);
    }
    climb(fn, sn);
  }
  assert(sn == 0);  // guaranteed by the length check
  return r;
}

Status verify_consistency(uint64_t size1, uint64_t size2, const Hash& root1, const Hash& root2,
                          const std::vector<Hash>& proof) {
  const std::string sizes = describe_sizes(size1, "size1", size2, "size2");
  if (size1 == 0) {
    return error(ErrorCode::kMalformed,
                 "consistency proof from an empty tree (size1 0) proves nothing; " + sizes);
  }
  if (size1 > size2) {
    return error(ErrorCode::kMalformed, "consistency proof with size1 above size2: " + sizes);
  }
  if (size1 == size2) {
    if (!proof.empty()) {
      return wrong_length("consistency proof", proof.size(), 0, sizes);
    }
    if (root1 != root2) {
      return error(ErrorCode::kMalformed, "roots differ for trees of equal size: " + sizes);
    }
    return Status::ok_status();
  }
  const size_t want = consistency_proof_length(size1, size2);
  if (proof.size() != want) return wrong_length("consistency proof", proof.size(), want, sizes);

  uint64_t fn = size1 - 1;
  uint64_t sn = size2 - 1;
  while ((fn & 1) != 0) climb(fn, sn);
  // When size1 is a power of two the old root is itself a node of the new
  // tree, so the RFC prepends it instead of sending it.
  size_t next = 0;
  Hash fr = std::has_single_bit(size1) ? root1 : proof[next++];
  Hash sr = fr;
  for (; next < proof.size(); ++next) {
    const Hash& c = proof[next];
    if ((fn & 1) != 0 || fn == sn) {
      fr = node_hash(c, fr);
      sr = node_hash(c, sr);
      while ((fn & 1) == 0 && fn != 0) climb(fn, sn);
    } else {
      sr = node_hash(sr, c);
    }
    climb(fn, sn);
  }
  assert(sn == 0);  // guaranteed by the length check
  if (fr != root1) {
    return error(ErrorCode::kMalformed, "consistency proof does not lead to root1; " + sizes);
  }
  if (sr != root2) {
    return error(ErrorCode::kMalformed,
                 "consistency proof and root1 do not lead to root2; " + sizes);
  }
  return Status::ok_status();
}

Result<Frontier> Frontier::load(NodeReader& nodes, uint64_t size) {
  Frontier f;
  f.peaks_.reserve(64);
  uint64_t begin = 0;
  for (int bit = 63; bit >= 0; --bit) {
    const uint64_t piece = uint64_t{1} << bit;
    if ((size & piece) == 0) continue;
    CUSTOS_ASSIGN_OR_RETURN(Hash h, read_perfect(nodes, begin, piece));
    f.peaks_.push_back(h);
    begin += piece;
  }
  f.size_ = size;
  return f;
}

void Frontier::append(const Hash& leaf, const std::function<void(const NewNode&)>& store) {
  assert(size_ != UINT64_MAX);
  // A frontier holds at most 64 peaks; reserving once keeps later appends
  // free of allocations.
  if (peaks_.capacity() < 64) peaks_.reserve(64);
  Hash h = leaf;
  uint32_t level = 0;
  uint64_t index = size_;
  store(NewNode{level, index, h});
  // Each trailing one bit of the old size is a peak of equal height that
  // the new leaf completes into a larger perfect subtree.
  for (uint64_t bits = size_; (bits & 1) != 0; bits >>= 1) {
    h = node_hash(peaks_.back(), h);
    peaks_.pop_back();
    ++level;
    index >>= 1;
    store(NewNode{level, index, h});
  }
  peaks_.push_back(h);
  ++size_;
}

Hash Frontier::root() const {
  if (peaks_.empty()) return empty_root();
  Hash acc = peaks_.back();
  for (size_t i = peaks_.size() - 1; i-- > 0;) acc = node_hash(peaks_[i], acc);
  return acc;
}

void MemoryTree::append(ByteView entry) {
  append_leaf_hash(leaf_hash(entry));
}

void MemoryTree::append_leaf_hash(const Hash& leaf) {
  frontier_.append(leaf, [this](const Frontier::NewNode& node) {
    if (levels_.size() <= node.level) levels_.resize(node.level + 1);
    assert(levels_[node.level].size() == node.index);
    levels_[node.level].push_back(node.hash);
  });
}

Result<Hash> MemoryTree::perfect_subtree(uint32_t level, uint64_t index) {
  ++reads_;
  if (level >= levels_.size() || index >= levels_[level].size()) {
    return error(ErrorCode::kNotFound, "no perfect subtree at level " + std::to_string(level) +
                                           ", index " + std::to_string(index));
  }
  return levels_[level][index];
}

}  // namespace custos::merkle
