#include <gtest/gtest.h>

#include "consensus/replica.h"
#include "consensus/types.h"

namespace custos::consensus {
namespace {

TEST(ConsensusCodec, GenesisIsDeterministic) {
  Hash256 h{};
  h[0] = 7;
  EXPECT_EQ(genesis_block(h).id(), genesis_block(h).id());
}

}  // namespace
}  // namespace custos::consensus
