// Store over a real RocksDB in a temporary directory: column families are
// separate key spaces, scans honour their bounds and order, batches apply as
// a unit, data survives a reopen, read-only opens cannot write, and a second
// writer on the same directory is refused.
#include "storage/store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "support/temp_dir.h"

namespace custos::storage {
namespace {

using testutil::TempDir;

// Small memory bounds: many stores are opened per test run.
Options small_options() {
  Options o;
  o.block_cache_bytes = 1 << 20;
  o.write_buffer_bytes = 1 << 20;
  return o;
}

std::unique_ptr<Store> open_or_die(const std::string& dir,
                                   const Options& options = small_options()) {
  auto store = Store::open(dir, options);
  EXPECT_TRUE(store.ok()) << store.status().to_string();
  return store.ok() ? std::move(store).value() : nullptr;
}

// Big-endian keys, as the ledger uses for log indexes and heights.
Bytes be64(uint64_t v) {
  Bytes k;
  append_be64(k, v);
  return k;
}

void put(Store& store, Column column, std::string_view key, std::string_view value,
         bool sync = false) {
  WriteBatch wb;
  wb.put(column, as_view(key), as_view(value));
  ASSERT_TRUE(store.write(wb, sync).ok());
}

std::string get_text(const Store& store, Column column, std::string_view key) {
  auto v = store.get(column, as_view(key));
  if (!v.ok()) return "<" + std::string(error_code_name(v.status().code())) + ">";
  return std::string(as_string_view(*v));
}

using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs scan_all(const Store& store, Column column, std::string_view start, std::string_view end,
               size_t stop_after = SIZE_MAX) {
  Pairs out;
  Status s = store.scan(column, as_view(start), as_view(end), [&](ByteView k, ByteView v) {
    out.emplace_back(std::string(as_string_view(k)), std::string(as_string_view(v)));
    return out.size() < stop_after;
  });
  EXPECT_TRUE(s.ok()) << s.to_string();
  return out;
}

Pairs scan_back(const Store& store, Column column, std::string_view start,
                size_t stop_after = SIZE_MAX) {
  Pairs out;
  Status s = store.scan_reverse(column, as_view(start), [&](ByteView k, ByteView v) {
    out.emplace_back(std::string(as_string_view(k)), std::string(as_string_view(v)));
    return out.size() < stop_after;
  });
  EXPECT_TRUE(s.ok()) << s.to_string();
  return out;
}

const Column kAllColumns[] = {
    Column::kMeta,  Column::kEntries, Column::kEntryIds,    Column::kNodes,     Column::kBlocks,
    Column::kIndex, Column::kKeys,    Column::kReceiptSigs, Column::kConsensus, Column::kDomain};

TEST(StoreTest, ColumnNamesAreDistinct) {
  std::set<std::string> names;
  for (Column c : kAllColumns) names.insert(column_name(c));
  EXPECT_EQ(names.size(), static_cast<size_t>(kColumnCount));
  EXPECT_STREQ(column_name(Column::kMeta), "default");
}

TEST(StoreTest, PutGetAcrossColumnFamilies) {
  TempDir dir;
  auto store = open_or_die(dir.path());
  ASSERT_TRUE(store);
  // The same key in every column holds a different value: the columns are
  // separate key spaces.
  WriteBatch wb;
  for (Column c : kAllColumns) {
    wb.put(c, as_view("k"), as_view(std::string("v-") + column_name(c)));
  }
  ASSERT_TRUE(store->write(wb, /*sync=*/true).ok());
  for (Column c : kAllColumns) {
    EXPECT_EQ(get_text(*store, c, "k"), std::string("v-") + column_name(c));
  }
  // Binary keys and values, including NUL bytes and an empty value.
  const Bytes key{0x00, 0xff, 0x00, 0x01};
  const Bytes value{0x00, 0x00, 0x7f};
  WriteBatch wb2;
  wb2.put(Column::kNodes, key, value);
  wb2.put(Column::kIndex, key, {});
  ASSERT_TRUE(store->write(wb2, false).ok());
  auto got = store->get(Column::kNodes, key);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, value);
  auto empty = store->get(Column::kIndex, key);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(store->get(Column::kEntries, key).status().code(), ErrorCode::kNotFound);
}

TEST(StoreTest, MissingKeyIsNotFound) {
  TempDir dir;
  auto store = open_or_die(dir.path());
  ASSERT_TRUE(store);
  auto v = store->get(Column::kBlocks, as_view("absent"));
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), ErrorCode::kNotFound);
  put(*store, Column::kBlocks, "present", "x");
  // Present in one column only.
  EXPECT_EQ(store->get(Column::kEntries, as_view("present")).status().code(), ErrorCode::kNotFound);
}

TEST(StoreTest, OverwriteAndRemove) {
  TempDir dir;
  auto store = open_or_die(dir.path());
  ASSERT_TRUE(store);
  put(*store, Column::kMeta, "head", "1");
  put(*store, Column::kMeta, "head", "2");
  EXPECT_EQ(get_text(*store, Column::kMeta, "head"), "2");
  WriteBatch wb;
  wb.remove(Column::kMeta, as_view("head"));
  ASSERT_TRUE(store->write(wb, true).ok());
  EXPECT_EQ(get_text(*store, Column::kMeta, "head"), "<not-found>");
  // Removing what is not there is not an error.
  WriteBatch wb2;
  wb2.remove(Column::kMeta, as_view("never"));
  EXPECT_TRUE(store->write(wb2, true).ok());
}

TEST(StoreTest, ScanVisitsHalfOpenRangeInOrder) {
  TempDir dir;
  auto store = open_or_die(dir.path());
  ASSERT_TRUE(store);
  WriteBatch wb;
  // Inserted out of order; big-endian keys must come back in numeric order.
  for (uint64_t i : {5u, 1u, 9u, 3u, 7u, 256u}) {
    wb.put(Column::kEntries, be64(i), as_view("e" + std::to_string(i)));
  }
  wb.put(Column::kIndex, as_view("other"), as_view("column"));  // must not show up
  ASSERT_TRUE(store->write(wb, false).ok());

  std::vector<uint64_t> seen;
  ASSERT_TRUE(store
                  ->scan(Column::kEntries, be64(3), be64(9),
                         [&](ByteView k, ByteView v) {
                           seen.push_back(read_be64(k.data()));
                           EXPECT_EQ(as_string_view(v), "e" + std::to_string(seen.back()));
                           return true;
                         })
                  .ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{3, 5, 7}));  // 9 excluded

  // Empty end: to the end of the column.
  seen.clear();
  ASSERT_TRUE(store
                  ->scan(Column::kEntries, be64(6), {},
                         [&](ByteView k, ByteView) {
                           seen.push_back(read_be64(k.data()));
                           return true;
                         })
                  .ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{7, 9, 256}));

  // Start between keys, and a visitor that stops early.
  seen.clear();
  ASSERT_TRUE(store
                  ->scan(Column::kEntries, be64(2), {},
                         [&](ByteView k, ByteView) {
                           seen.push_back(read_be64(k.data()));
                           return seen.size() < 2;
                         })
                  .ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{3, 5}));

  // Empty ranges.
  EXPECT_TRUE(scan_all(*store, Column::kEntries, "zzz", "").empty());
  EXPECT_TRUE(scan_all(*store, Column::kBlocks, "", "").empty());
}

TEST(StoreTest, ScanPrefixRangeLikeTheSecondaryIndexes) {
  TempDir dir;
  auto store = open_or_die(dir.path());
  ASSERT_TRUE(store);
  WriteBatch wb;
  for (std::string k : {"a1", "a2", "a3", "b1", "b2", "c"}) wb.put(Column::kIndex, as_view(k), {});
  ASSERT_TRUE(store->write(wb, false).ok());
  Pairs got = scan_all(*store, Column::kIndex, "a2", "b");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, "a2");
  EXPECT_EQ(got[1].first, "a3");
  got = scan_all(*store, Column::kIndex, "b", "b\xff");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].first, "b2");
}

TEST(StoreTest, ScanReverseVisitsDescendingFromStartInclusive) {
  TempDir dir;
  auto store = open_or_die(dir.path());
  ASSERT_TRUE(store);
  WriteBatch wb;
  for (std::string k : {"a", "c", "e", "g"}) wb.put(Column::kBlocks, as_view(k), as_view(k + k));
  wb.put(Column::kKeys, as_view("d"), as_view("other column"));
  ASSERT_TRUE(store->write(wb, false).ok());

  auto keys = [](const Pairs& p) {
    std::vector<std::string> out;
    for (const auto& [k, v] : p) out.push_back(k);
    return out;
  };
  EXPECT_EQ(keys(scan_back(*store, Column::kBlocks, "e")),
            (std::vector<std::string>{"e", "c", "a"}));
  EXPECT_EQ(keys(scan_back(*store, Column::kBlocks, "d")), (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(keys(scan_back(*store, Column::kBlocks, "z")),
            (std::vector<std::string>{"g", "e", "c", "a"}));
  EXPECT_EQ(keys(scan_back(*store, Column::kBlocks, "z", 1)), (std::vector<std::string>{"g"}));
  EXPECT_TRUE(scan_back(*store, Column::kBlocks, "0").empty());  // before the first key
  Pairs one = scan_back(*store, Column::kBlocks, "c", 1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].second, "cc");
}

TEST(StoreTest, BatchAppliesAllOperationsInOrder) {
  TempDir dir;
  auto store = open_or_die(dir.path());
  ASSERT_TRUE(store);
  put(*store, Column::kMeta, "stale", "x");

  WriteBatch wb;
  EXPECT_EQ(wb.count(), 0u);
  wb.put(Column::kEntries, as_view("k1"), as_view("v1"));
  wb.put(Column::kBlocks, as_view("k2"), as_view("v2"));
  wb.remove(Column::kMeta, as_view("stale"));
  wb.put(Column::kKeys, as_view("k3"), as_view("first"));
  wb.put(Column::kKeys, as_view("k3"), as_view("second"));  // later operation wins
  wb.put(Column::kIndex, as_view("k4"), as_view("gone"));
  wb.remove(Column::kIndex, as_view("k4"));
  EXPECT_EQ(wb.count(), 7u);
  // Keys and values, removes counting their key.
  EXPECT_EQ(wb.data_bytes(), 4u + 4u + 5u + 2u + 5u + 2u + 6u + 2u + 4u + 2u);

  // Nothing is visible before the write.
  EXPECT_EQ(get_text(*store, Column::kEntries, "k1"), "<not-found>");
  ASSERT_TRUE(store->write(wb, /*sync=*/true).ok());
  EXPECT_EQ(get_text(*store, Column::kEntries, "k1"), "v1");
  EXPECT_EQ(get_text(*store, Column::kBlocks, "k2"), "v2");
  EXPECT_EQ(get_text(*store, Column::kMeta, "stale"), "<not-found>");
  EXPECT_EQ(get_text(*store, Column::kKeys, "k3"), "second");
  EXPECT_EQ(get_text(*store, Column::kIndex, "k4"), "<not-found>");
}

TEST(StoreTest, BatchIsEmptyAfterWriteAndReusingItDoesNotReplayOldOperations) {
  TempDir dir;
  auto store = open_or_die(dir.path());
  ASSERT_TRUE(store);
  WriteBatch wb;
  wb.put(Column::kMeta, as_view("k"), as_view("old"));
  ASSERT_TRUE(store->write(wb, false).ok());
  EXPECT_EQ(wb.count(), 0u);

  put(*store, Column::kMeta, "k", "new");  // someone else updates k

  // A second write of the same batch object carries only what was added
  // since: the earlier put must not be applied again over "new".
  wb.put(Column::kMeta, as_view("j"), as_view("j"));
  ASSERT_TRUE(store->write(wb, false).ok());
  EXPECT_EQ(get_text(*store, Column::kMeta, "j"), "j");
  EXPECT_EQ(get_text(*store, Column::kMeta, "k"), "new");
}

TEST(StoreTest, MovedBatchKeepsItsOperations) {
  TempDir dir;
  auto store = open_or_die(dir.path());
  ASSERT_TRUE(store);
  WriteBatch a;
  a.put(Column::kEntries, as_view("m"), as_view("moved"));
  WriteBatch b = std::move(a);
  EXPECT_EQ(b.count(), 1u);
  ASSERT_TRUE(store->write(b, false).ok());
  EXPECT_EQ(get_text(*store, Column::kEntries, "m"), "moved");
}

TEST(StoreTest, ReopenPersistsEveryColumn) {
  TempDir dir;
  {
    auto store = open_or_die(dir.path());
    ASSERT_TRUE(store);
    WriteBatch wb;
    for (Column c : kAllColumns) wb.put(c, as_view("persist"), as_view(column_name(c)));
    ASSERT_TRUE(store->write(wb, /*sync=*/true).ok());
    // Not synced and not flushed: the WAL must still bring it back.
    put(*store, Column::kEntries, "unsynced", "still here", /*sync=*/false);
  }
  auto store = open_or_die(dir.path());
  ASSERT_TRUE(store);
  for (Column c : kAllColumns) EXPECT_EQ(get_text(*store, c, "persist"), column_name(c));
  EXPECT_EQ(get_text(*store, Column::kEntries, "unsynced"), "still here");
}

TEST(StoreTest, FlushAndDiskBytes) {
  TempDir dir;
  auto store = open_or_die(dir.path());
  ASSERT_TRUE(store);
  WriteBatch wb;
  const std::string value(1000, 'x');
  for (uint64_t i = 0; i < 200; ++i) wb.put(Column::kEntries, be64(i), as_view(value));
  ASSERT_TRUE(store->write(wb, false).ok());
  ASSERT_TRUE(store->flush().ok());
  // 200 KB of compressible data: something is on disk, and far less than a
  // gigabyte (a sanity bound on the property arithmetic).
  const uint64_t bytes = store->disk_bytes();
  EXPECT_GT(bytes, 0u);
  EXPECT_LT(bytes, 1ull << 30);
  auto v = store->get(Column::kEntries, be64(199));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->size(), 1000u);
}

TEST(StoreTest, ReadOnlyOpenReadsButCannotWrite) {
  TempDir dir;
  {
    auto store = open_or_die(dir.path());
    ASSERT_TRUE(store);
    put(*store, Column::kBlocks, "b0", "block", /*sync=*/true);
  }
  Options ro = small_options();
  ro.read_only = true;
  ro.create_if_missing = false;
  auto store = open_or_die(dir.path(), ro);
  ASSERT_TRUE(store);
  EXPECT_EQ(get_text(*store, Column::kBlocks, "b0"), "block");
  EXPECT_EQ(scan_all(*store, Column::kBlocks, "", "").size(), 1u);
  WriteBatch wb;
  wb.put(Column::kBlocks, as_view("b1"), as_view("nope"));
  Status s = store->write(wb, true);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kIo) << s.to_string();
  EXPECT_EQ(get_text(*store, Column::kBlocks, "b1"), "<not-found>");
}

TEST(StoreTest, ReadOnlyOpenWorksBesideALiveWriter) {
  // The audit opens read-only while the node runs.
  TempDir dir;
  auto writer = open_or_die(dir.path());
  ASSERT_TRUE(writer);
  put(*writer, Column::kMeta, "head", "7", /*sync=*/true);
  Options ro = small_options();
  ro.read_only = true;
  ro.create_if_missing = false;
  auto reader = open_or_die(dir.path(), ro);
  ASSERT_TRUE(reader);
  EXPECT_EQ(get_text(*reader, Column::kMeta, "head"), "7");
}

TEST(StoreTest, ReadOnlyOpenOfMissingDirectoryFails) {
  TempDir dir;
  Options ro = small_options();
  ro.read_only = true;
  ro.create_if_missing = false;
  auto store = Store::open(dir.path() + "/does-not-exist", ro);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), ErrorCode::kIo);
}

TEST(StoreTest, NoCreateIfMissingRefusesNewDirectory) {
  TempDir dir;
  Options o = small_options();
  o.create_if_missing = false;
  auto store = Store::open(dir.path() + "/db", o);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), ErrorCode::kIo);
}

TEST(StoreTest, OpeningALockedDatabaseFailsWithIo) {
  TempDir dir;
  auto first = open_or_die(dir.path());
  ASSERT_TRUE(first);
  auto second = Store::open(dir.path(), small_options());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kIo);
  EXPECT_NE(second.status().message().find("opening RocksDB"), std::string::npos)
      << second.status().message();
  // Once the first holder closes, the lock is free again.
  first.reset();
  auto third = Store::open(dir.path(), small_options());
  EXPECT_TRUE(third.ok()) << third.status().to_string();
}

}  // namespace
}  // namespace custos::storage
