// ConsensusStore: what the node persists before it speaks, and what it reads
// back at start (consensus/replica.h Recovered), on a real RocksDB.
#include "node/consensus_store.h"

#include <gtest/gtest.h>

#include "ledger/records.h"
#include "support/temp_dir.h"

namespace custos::node {
namespace {

using consensus::Block;

Block child_of(const Block& parent, uint64_t round, const std::string& item) {
  Block b;
  b.round = round;
  b.parent_id = parent.id();
  b.qc = consensus::genesis_qc(parent.id());
  b.time_ms = 1000 + round;
  b.payload = {to_bytes(item)};
  return b;
}

class ConsensusStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = storage::Store::open(dir_.path() + "/db");
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    store_ = std::move(s).value();
    genesis_ = consensus::genesis_block(Hash256{9});
    cs_ = std::make_unique<ConsensusStore>(*store_, genesis_);
  }

  testutil::TempDir dir_;
  std::unique_ptr<storage::Store> store_;
  Block genesis_;
  std::unique_ptr<ConsensusStore> cs_;
};

TEST_F(ConsensusStoreTest, FirstStartRecoversTheGenesis) {
  auto r = cs_->recover(std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->committed, genesis_);
  EXPECT_TRUE(r->pending.empty());
  EXPECT_EQ(r->safety.high_qc, consensus::genesis_qc(genesis_.id()));
  EXPECT_EQ(cs_->get(genesis_.id()), genesis_) << "the genesis block is always readable";
  EXPECT_FALSE(cs_->get(Hash256{1}).has_value());
}

TEST_F(ConsensusStoreTest, PersistedSafetyAndBlocksComeBack) {
  Block b1 = child_of(genesis_, 1, "one");
  Block b2 = child_of(b1, 2, "two");
  consensus::SafetyState safety;
  safety.last_voted_round = 2;
  safety.highest_timeout_round = 1;
  safety.high_qc = consensus::genesis_qc(genesis_.id());
  ASSERT_TRUE(cs_->persist(safety, {b1, b2}).ok());

  auto fresh = cs_->recover(std::nullopt);
  ASSERT_TRUE(fresh.ok()) << fresh.status().to_string();
  EXPECT_EQ(fresh->safety, safety);
  EXPECT_EQ(fresh->pending.size(), 2u);

  // After the ledger executed b1, only what lies above it is pending.
  auto after_b1 = cs_->recover(b1.id());
  ASSERT_TRUE(after_b1.ok()) << after_b1.status().to_string();
  EXPECT_EQ(after_b1->committed, b1);
  ASSERT_EQ(after_b1->pending.size(), 1u);
  EXPECT_EQ(after_b1->pending[0], b2);
}

TEST_F(ConsensusStoreTest, AnExecutedBlockThatIsNotStoredIsCorruption) {
  auto r = cs_->recover(Hash256{7});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
}

TEST_F(ConsensusStoreTest, KeptCommittedBlocksAreServed) {
  Block b1 = child_of(genesis_, 1, "fetched while catching up");
  ASSERT_TRUE(cs_->keep_committed(b1, b1.id()).ok());
  EXPECT_EQ(cs_->get(b1.id()), b1);
  ASSERT_TRUE(cs_->keep_committed(b1, b1.id()).ok()) << "keeping it twice is harmless";
}

TEST_F(ConsensusStoreTest, ABlockStoredUnderAnotherIdIsNotServed) {
  Block b1 = child_of(genesis_, 1, "real");
  Block other = child_of(genesis_, 1, "impostor");
  Bytes key{'b'};
  const Hash256 id = b1.id();
  key.insert(key.end(), id.begin(), id.end());
  storage::WriteBatch wb;
  wb.put(storage::Column::kConsensus, key, consensus::encode_block(other));
  ASSERT_TRUE(store_->write(wb, true).ok());
  EXPECT_FALSE(cs_->get(id).has_value()) << "blocks are checked against their id on every read";
}

// After execution a block is kept in compact form, its registered items
// referring to log entries; reading it back rebuilds the very block.
TEST_F(ConsensusStoreTest, AnExecutedBlockIsKeptCompactAndReadBackWhole) {
  Block b1 = child_of(genesis_, 1, "registered-a");
  b1.payload = {to_bytes("registered-a"), to_bytes("refused"), to_bytes("registered-b")};
  ASSERT_TRUE(cs_->persist(std::nullopt, {b1}).ok());
  // The ledger wrote the registered items as entries 7 and 8.
  storage::WriteBatch entries;
  entries.put(storage::Column::kEntries, ledger::records::be64_key(7), to_bytes("registered-a"));
  entries.put(storage::Column::kEntries, ledger::records::be64_key(8), to_bytes("registered-b"));
  ASSERT_TRUE(store_->write(entries, true).ok());
  const Hash256 id = b1.id();
  ASSERT_TRUE(cs_->compact_executed(b1, id, {7, std::nullopt, 8}).ok());

  Bytes key{'b'};
  key.insert(key.end(), id.begin(), id.end());
  auto stored = store_->get(storage::Column::kConsensus, key);
  ASSERT_TRUE(stored.ok());
  EXPECT_LT(stored->size(), consensus::encode_block(b1).size() + 16);
  EXPECT_EQ(stored->at(0), 0x82) << "the compact form, not the block";
  EXPECT_EQ(cs_->get(id), b1);
  auto recovered = cs_->recover(id);
  ASSERT_TRUE(recovered.ok()) << recovered.status().to_string();
  EXPECT_EQ(recovered->committed, b1);

  // An entry that does not hold the item's bytes makes the block unreadable
  // (its id no longer matches), never a different block.
  storage::WriteBatch tampered;
  tampered.put(storage::Column::kEntries, ledger::records::be64_key(8), to_bytes("something else"));
  ASSERT_TRUE(store_->write(tampered, true).ok());
  EXPECT_FALSE(cs_->get(id).has_value());
}

TEST_F(ConsensusStoreTest, ABlockWithNothingRegisteredStaysWhole) {
  Block b1 = child_of(genesis_, 1, "refused");
  ASSERT_TRUE(cs_->persist(std::nullopt, {b1}).ok());
  ASSERT_TRUE(cs_->compact_executed(b1, b1.id(), {std::nullopt}).ok());
  Bytes key{'b'};
  const Hash256 id = b1.id();
  key.insert(key.end(), id.begin(), id.end());
  EXPECT_EQ(store_->get(storage::Column::kConsensus, key).value(), consensus::encode_block(b1));
  EXPECT_EQ(cs_->get(id), b1);
}

TEST_F(ConsensusStoreTest, ACompactRecordWithAMissingEntryIsNotServed) {
  Block b1 = child_of(genesis_, 1, "never written");
  ASSERT_TRUE(cs_->persist(std::nullopt, {b1}).ok());
  ASSERT_TRUE(cs_->compact_executed(b1, b1.id(), {42}).ok());
  EXPECT_FALSE(cs_->get(b1.id()).has_value());
}

}  // namespace
}  // namespace custos::node
