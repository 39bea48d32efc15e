// Quorum arithmetic for a consortium of n nodes, shared by consensus (votes,
// timeouts), receipts (node signatures) and the CLI (offline verification).
#pragma once

#include <cstddef>

namespace custos {

// Byzantine nodes tolerated: the largest f with n >= 3f + 1.
constexpr size_t fault_tolerance(size_t node_count) {
  return node_count == 0 ? 0 : (node_count - 1) / 3;
}

// Signatures that make a quorum: n - f. For n = 3f + 1 this is 2f + 1; for
// other n it is never less than ceil((n + f + 1) / 2), so any two quorums
// share an honest node, and the n - f honest nodes alone can form one.
constexpr size_t quorum_size(size_t node_count) {
  return node_count - fault_tolerance(node_count);
}

static_assert(quorum_size(1) == 1 && quorum_size(4) == 3 && quorum_size(7) == 5);
static_assert(quorum_size(5) == 4 && quorum_size(6) == 5);

}  // namespace custos
