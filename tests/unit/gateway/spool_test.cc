// The durable spool: append, de-duplication, removal, reopening, and a
// record whose bytes were damaged.
#include "gateway/spool.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>

#include "crypto/hash.h"
#include "gateway/limits.h"
#include "support/temp_dir.h"

namespace custos::gateway {
namespace {

SpoolRecord record(const std::string& text) {
  SpoolRecord r;
  r.topic = "iomt/v1/a/b/c/d/event";
  r.statement = to_bytes(text);
  r.id = crypto::sha256(r.statement);
  r.response_topic = "iomt/v1/a/b/c/d/ack";
  r.correlation = to_bytes("corr");
  r.want_receipt = true;
  r.received_ms = 1234;
  r.sent_ms = 1200;
  return r;
}

// Writes raw key/value pairs into a spool folder, as an earlier version or
// an interrupted run could have left them.
::testing::AssertionResult write_raw(const std::string& dir,
                                     const std::vector<std::pair<Bytes, Bytes>>& pairs) {
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(o, dir, &raw).ok()) return ::testing::AssertionFailure() << "open";
  std::unique_ptr<rocksdb::DB> db(raw);
  auto sl = [](const Bytes& b) {
    return rocksdb::Slice(reinterpret_cast<const char*>(b.data()), b.size());
  };
  for (const auto& [k, v] : pairs) {
    if (!db->Put(rocksdb::WriteOptions(), sl(k), sl(v)).ok())
      return ::testing::AssertionFailure() << "put";
  }
  return ::testing::AssertionSuccess();
}

Spool::Options options(const std::string& dir) {
  return Spool::Options{dir, 1000, 1 << 20};
}

TEST(Spool, AppendsOnceRemovesAndSurvivesReopen) {
  testutil::TempDir dir;
  {
    auto spool = Spool::open(options(dir.path())).value();
    SpoolRecord a = record("a"), b = record("b"), a2 = record("a");
    EXPECT_EQ(spool->append(a).value(), Spool::Append::kAdded);
    EXPECT_EQ(spool->append(b).value(), Spool::Append::kAdded);
    EXPECT_EQ(spool->append(a2).value(), Spool::Append::kDuplicate) << "spooled once";
    ASSERT_TRUE(spool->sync().ok());
    EXPECT_EQ(spool->depth(), 2u);
    EXPECT_LT(a.seq, b.seq);
    ASSERT_TRUE(spool->remove(a).ok());
    EXPECT_EQ(spool->depth(), 1u);
  }
  auto spool = Spool::open(options(dir.path())).value();
  EXPECT_EQ(spool->depth(), 1u);
  auto all = spool->read_from(1, 100).value();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].statement, to_bytes("b"));
  EXPECT_EQ(all[0].response_topic, "iomt/v1/a/b/c/d/ack");
  EXPECT_EQ(all[0].correlation, to_bytes("corr"));
  EXPECT_TRUE(all[0].want_receipt);
  EXPECT_EQ(all[0].sent_ms, 1200u);
  SpoolRecord c = record("c");
  EXPECT_EQ(spool->append(c).value(), Spool::Append::kAdded);
  EXPECT_GT(c.seq, all[0].seq) << "sequence numbers go on after a reopen";
  SpoolRecord a = record("a");
  EXPECT_EQ(spool->append(a).value(), Spool::Append::kAdded) << "a removed record may come again";
}

// Appends are staged until sync(), which writes them in one synced write:
// nothing is readable (or durable) before it.
TEST(Spool, AppendsAreReadableOnlyOnceSynced) {
  testutil::TempDir dir;
  {
    auto spool = Spool::open(options(dir.path())).value();
    SpoolRecord a = record("a"), b = record("b");
    ASSERT_EQ(spool->append(a).value(), Spool::Append::kAdded);
    ASSERT_EQ(spool->append(b).value(), Spool::Append::kAdded);
    EXPECT_TRUE(spool->read_from(1, 100).value().empty());
    ASSERT_TRUE(spool->sync().ok());
    EXPECT_EQ(spool->read_from(1, 100).value().size(), 2u);
    SpoolRecord c = record("c");
    ASSERT_EQ(spool->append(c).value(), Spool::Append::kAdded);  // never synced
  }
  auto spool = Spool::open(options(dir.path())).value();
  EXPECT_EQ(spool->depth(), 2u) << "an append never synced was never acknowledged either";
  SpoolRecord a = record("a");
  EXPECT_EQ(spool->append(a).value(), Spool::Append::kDuplicate)
      << "the entry ids are rebuilt from the records at open";
}

// Removals are gathered and written together; a closing spool writes what
// it gathered.
TEST(Spool, GatheredRemovalsAreWrittenByFlushAndAtClose) {
  testutil::TempDir dir;
  {
    auto spool = Spool::open(options(dir.path())).value();
    std::vector<SpoolRecord> rs;
    for (int i = 0; i < 5; ++i) {
      rs.push_back(record("r" + std::to_string(i)));
      ASSERT_EQ(spool->append(rs.back()).value(), Spool::Append::kAdded);
    }
    ASSERT_TRUE(spool->sync().ok());
    ASSERT_TRUE(spool->remove(rs[0]).ok());
    ASSERT_TRUE(spool->remove(rs[1]).ok());
    EXPECT_EQ(spool->depth(), 3u);
    ASSERT_TRUE(spool->flush_removals().ok());
    EXPECT_EQ(spool->read_from(1, 100).value().size(), 3u);
    ASSERT_TRUE(spool->remove(rs[2]).ok());  // left to the close
  }
  auto spool = Spool::open(options(dir.path())).value();
  EXPECT_EQ(spool->depth(), 2u);
  auto left = spool->read_from(1, 100).value();
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].statement, to_bytes("r3"));
}

// Gathered removals are written on their own once there are
// kSpoolRemovalsPerWrite of them, flush or not.
TEST(Spool, GatheredRemovalsAreWrittenWhenTheyReachTheirLimit) {
  testutil::TempDir dir;
  auto spool = Spool::open(options(dir.path())).value();
  std::vector<SpoolRecord> rs;
  const size_t n = limits::kSpoolRemovalsPerWrite + 10;
  for (size_t i = 0; i < n; ++i) {
    rs.push_back(record("r" + std::to_string(i)));
    ASSERT_EQ(spool->append(rs.back()).value(), Spool::Append::kAdded);
  }
  ASSERT_TRUE(spool->sync().ok());
  for (size_t i = 0; i + 1 < limits::kSpoolRemovalsPerWrite; ++i) {
    ASSERT_TRUE(spool->remove(rs[i]).ok());
  }
  EXPECT_EQ(spool->read_from(1, 1000).value().size(), n) << "gathered, not yet written";
  ASSERT_TRUE(spool->remove(rs[limits::kSpoolRemovalsPerWrite - 1]).ok());
  EXPECT_EQ(spool->read_from(1, 1000).value().size(), 10u);
}

// A spool written by an earlier version kept entry ids under 'i' keys:
// opening it drops them and reads the ids from the records.
TEST(Spool, OpensASpoolWithTheOldIdKeys) {
  testutil::TempDir dir;
  SpoolRecord a = record("a");
  Bytes ikey{'i'};
  ikey.insert(ikey.end(), a.id.begin(), a.id.end());
  ASSERT_TRUE(write_raw(dir.path(), {{Bytes{'r', 0, 0, 0, 0, 0, 0, 0, 5}, a.encode()},
                                     {ikey, Bytes{0, 0, 0, 0, 0, 0, 0, 5}}}));
  {
    auto spool = Spool::open(options(dir.path())).value();
    EXPECT_EQ(spool->depth(), 1u);
    SpoolRecord again = record("a");
    EXPECT_EQ(spool->append(again).value(), Spool::Append::kDuplicate);
    SpoolRecord b = record("b");
    ASSERT_EQ(spool->append(b).value(), Spool::Append::kAdded);
    EXPECT_EQ(b.seq, 6u);
  }
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir.path(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  size_t id_keys = 0;
  for (it->Seek("i"); it->Valid() && it->key()[0] == 'i'; it->Next()) ++id_keys;
  EXPECT_EQ(id_keys, 0u);
}

// A crash that lost a gathered removal can leave two records of one entry
// id (the old one, and the redelivery spooled after it was removed): the
// older one's removal must not forget the newer one.
TEST(Spool, TwoRecordsOfOneIdAfterALostRemoval) {
  testutil::TempDir dir;
  SpoolRecord a = record("a");
  ASSERT_TRUE(write_raw(dir.path(), {{Bytes{'r', 0, 0, 0, 0, 0, 0, 0, 3}, a.encode()},
                                     {Bytes{'r', 0, 0, 0, 0, 0, 0, 0, 9}, a.encode()}}));
  auto spool = Spool::open(options(dir.path())).value();
  auto both = spool->read_from(1, 10).value();
  ASSERT_EQ(both.size(), 2u);
  ASSERT_TRUE(spool->remove(both[0]).ok());  // the older, seq 3
  SpoolRecord again = record("a");
  EXPECT_EQ(spool->append(again).value(), Spool::Append::kDuplicate) << "seq 9 is still spooled";
  ASSERT_TRUE(spool->remove(both[1]).ok());
  EXPECT_EQ(spool->append(again).value(), Spool::Append::kAdded);
}

// Opening decodes every record (to rebuild the entry ids): a damaged one
// refuses the open, so the gateway stops instead of skipping a message.
TEST(Spool, ADamagedRecordRefusesTheOpen) {
  testutil::TempDir dir;
  Bytes damaged = record("a").encode();
  damaged.back() ^= 1;  // the checksum no longer matches
  ASSERT_TRUE(write_raw(dir.path(), {{Bytes{'r', 0, 0, 0, 0, 0, 0, 0, 1}, record("b").encode()},
                                     {Bytes{'r', 0, 0, 0, 0, 0, 0, 0, 2}, damaged}}));
  auto spool = Spool::open(options(dir.path()));
  ASSERT_FALSE(spool.ok());
  EXPECT_EQ(spool.status().code(), ErrorCode::kCorruption) << spool.status().to_string();
}

TEST(Spool, FillAndDamagedRecords) {
  testutil::TempDir dir;
  auto spool = Spool::open(Spool::Options{dir.path(), 4, 1 << 20}).value();
  for (int i = 0; i < 4; ++i) {
    SpoolRecord r = record("r" + std::to_string(i));
    ASSERT_EQ(spool->append(r).value(), Spool::Append::kAdded);
  }
  EXPECT_DOUBLE_EQ(spool->fill(), 1.0);
  SpoolRecord over = record("over");
  EXPECT_EQ(spool->append(over).value(), Spool::Append::kFull);
  EXPECT_EQ(spool->depth(), 4u);
  SpoolRecord r = record("x");
  Bytes bytes = r.encode();
  ASSERT_TRUE(SpoolRecord::decode(7, bytes).ok());
  bytes[40] ^= 1;
  EXPECT_EQ(SpoolRecord::decode(7, bytes).status().code(), ErrorCode::kCorruption);
  EXPECT_EQ(SpoolRecord::decode(7, Bytes(10, 0)).status().code(), ErrorCode::kCorruption);
}

}  // namespace
}  // namespace custos::gateway
