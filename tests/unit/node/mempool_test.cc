// Mempool: bounded, deduplicating, and what a leader takes keeps each key's
// statements in sequence order.
#include "node/mempool.h"

#include <gtest/gtest.h>

#include "crypto/hash.h"
#include "unit/ledger/ledger_fixture.h"

namespace custos::node {
namespace {

ledger::Admitted admitted(const Bytes& bytes) {
  auto st = cose::parse_statement(bytes);
  EXPECT_TRUE(st.ok()) << st.status().to_string();
  return ledger::Admitted{std::move(st).value(), crypto::sha256(bytes)};
}

uint64_t sequence_of(const Bytes& bytes) {
  return cose::parse_statement(bytes)->header.sequence;
}

const auto kNothingInFlight = [](const Hash256&) { return false; };

TEST(MempoolTest, TakeOrdersEachKeysStatementsBySequence) {
  Mempool pool(100, 1 << 20);
  const auto& a = testutil::test_keys().admin;
  const auto b = testutil::new_key();
  // Arrived out of order (e.g. through two different nodes).
  for (uint64_t seq : {3, 1, 2})
    ASSERT_EQ(pool.add(admitted(testutil::sign(a, seq))), Mempool::Added::kAdded);
  for (uint64_t seq : {2, 1})
    ASSERT_EQ(pool.add(admitted(testutil::sign(b, seq))), Mempool::Added::kAdded);
  std::vector<Bytes> taken = pool.take(100, 1 << 20, kNothingInFlight);
  ASSERT_EQ(taken.size(), 5u);
  std::map<Hash256, std::vector<uint64_t>> by_key;
  for (const Bytes& t : taken) {
    by_key[cose::parse_statement(t)->header.kid].push_back(sequence_of(t));
  }
  EXPECT_EQ(by_key[a.public_key().kid()], (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(by_key[b.public_key().kid()], (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(pool.size(), 5u) << "take() leaves the statements until they are executed";
}

TEST(MempoolTest, DuplicatesFullAndExecutedAreRefused) {
  Mempool pool(2, 1 << 20);
  const auto& a = testutil::test_keys().admin;
  Bytes s1 = testutil::sign(a, 1), s2 = testutil::sign(a, 2), s3 = testutil::sign(a, 3);
  EXPECT_EQ(pool.add(admitted(s1)), Mempool::Added::kAdded);
  EXPECT_EQ(pool.add(admitted(s1)), Mempool::Added::kDuplicate);
  EXPECT_EQ(pool.add(admitted(s2)), Mempool::Added::kAdded);
  EXPECT_EQ(pool.add(admitted(s3)), Mempool::Added::kFull);
  // Executed statements leave, and a late forward of one is not taken back.
  auto moved = pool.extract(crypto::sha256(s1));
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(moved->statement.bytes, s1);
  pool.executed({crypto::sha256(s1)});
  EXPECT_EQ(pool.add(admitted(s1)), Mempool::Added::kExecuted);
  EXPECT_TRUE(pool.contains(crypto::sha256(s1)));
  EXPECT_EQ(pool.size(), 1u);
  EXPECT_EQ(pool.add(admitted(s3)), Mempool::Added::kAdded);
}

TEST(MempoolTest, TakeSkipsInFlightAndHonoursLimits) {
  Mempool pool(100, 1 << 20);
  const auto& a = testutil::test_keys().admin;
  std::vector<Bytes> all;
  for (uint64_t seq = 1; seq <= 6; ++seq) {
    all.push_back(testutil::sign(a, seq));
    pool.add(admitted(all.back()));
  }
  const Hash256 first = crypto::sha256(all[0]);
  auto taken = pool.take(3, 1 << 20, [&](const Hash256& id) { return id == first; });
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_EQ(taken[0], all[1]);
  EXPECT_EQ(pool.take(100, all[0].size() + all[1].size(), kNothingInFlight).size(), 2u);
}

}  // namespace
}  // namespace custos::node
