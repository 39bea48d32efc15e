#include "storage/store.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <vector>

namespace custos::storage {

namespace {
// Share of the block cache kept for index and filter blocks.
constexpr double kHighPriorityPoolRatio = 0.5;
// Smallest shard of the block cache. A block larger than its shard's share is
// not kept, and an SST's full filter block is megabytes (about 1.2 MiB per
// million keys): with RocksDB's default 512 KiB shards every point lookup
// read and checksummed whole filters again (an incident report at 10^6
// entries took 28 ms of CPU instead of 1 ms).
constexpr size_t kCacheShardBytesMin = 16ull << 20;

int cache_shard_bits(size_t cache_bytes) {
  int bits = 0;
  while ((cache_bytes >> (bits + 1)) >= kCacheShardBytesMin && bits < 6) ++bits;
  return bits;
}

rocksdb::Slice slice(ByteView b) {
  return rocksdb::Slice(reinterpret_cast<const char*>(b.data()), b.size());
}
ByteView view(const rocksdb::Slice& s) {
  return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
Status io_error(const rocksdb::Status& s, const char* what) {
  if (s.IsCorruption())
    return error(ErrorCode::kCorruption, std::string(what) + ": " + s.ToString());
  return error(ErrorCode::kIo, std::string(what) + ": " + s.ToString());
}
}  // namespace

namespace {
// Size of one partition of an SST's index or filter (see Store::open).
constexpr uint64_t kMetadataBlockBytes = 4096;

// The ledger appends in key order within each of these families: log indexes
// (entries), per-level node indexes (log_nodes), per-value log indexes behind
// a 9-byte prefix (indexes), and within each write, entry ids (sorted). A memtable insert hint per
// prefix turns each skiplist insert from a search from the top into a step from the last insert,
// which profiles showed as the largest cost of a block write.
rocksdb::ColumnFamilyOptions options_for(Column column, rocksdb::ColumnFamilyOptions base) {
  switch (column) {
    case Column::kEntries:
    case Column::kEntryIds:  // random keys, but the ledger adds each batch's in sorted order
      base.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(0));
      break;
    case Column::kNodes:
      base.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
      break;
    case Column::kIndex:
      base.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(9));
      break;
    default:
      break;
  }
  return base;
}
}  // namespace

const char* column_name(Column column) {
  switch (column) {
    case Column::kMeta:
      return rocksdb::kDefaultColumnFamilyName.c_str();
    case Column::kEntries:
      return "entries";
    case Column::kEntryIds:
      return "entry_ids";
    case Column::kNodes:
      return "log_nodes";
    case Column::kBlocks:
      return "blocks";
    case Column::kIndex:
      return "indexes";
    case Column::kKeys:
      return "keys";
    case Column::kDomain:
      return "domain";
    case Column::kReceiptSigs:
      return "receipt_sigs";
    case Column::kConsensus:
      return "consensus";
  }
  return "?";
}

struct WriteBatch::Impl {
  struct Op {
    Column column;
    bool remove;
    size_t key_offset, key_size, value_offset, value_size;
  };
  // Operations are buffered until the batch reaches a Store, which knows the
  // column family handles; this keeps WriteBatch free of a Store reference.
  // Keys and values share one growing buffer: a block puts ~7 records per
  // entry, and one allocation per record showed up in profiles.
  std::vector<Op> ops;
  Bytes arena;

  size_t append(ByteView b) {
    size_t offset = arena.size();
    arena.insert(arena.end(), b.begin(), b.end());
    return offset;
  }
  ByteView at(size_t offset, size_t size) const { return ByteView(arena.data() + offset, size); }
};

WriteBatch::WriteBatch() : impl_(std::make_unique<Impl>()) {}
WriteBatch::~WriteBatch() = default;
WriteBatch::WriteBatch(WriteBatch&&) noexcept = default;
WriteBatch& WriteBatch::operator=(WriteBatch&&) noexcept = default;

void WriteBatch::put(Column column, ByteView key, ByteView value) {
  const size_t k = impl_->append(key);
  const size_t v = impl_->append(value);
  impl_->ops.push_back({column, false, k, key.size(), v, value.size()});
}
void WriteBatch::remove(Column column, ByteView key) {
  const size_t k = impl_->append(key);
  impl_->ops.push_back({column, true, k, key.size(), 0, 0});
}
size_t WriteBatch::count() const {
  return impl_->ops.size();
}
size_t WriteBatch::data_bytes() const {
  return impl_->arena.size();
}

struct Store::Impl {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::shared_ptr<rocksdb::Cache> cache;

  rocksdb::ColumnFamilyHandle* cf(Column c) const { return handles[static_cast<int>(c)]; }

  ~Impl() {
    for (auto* h : handles) {
      if (db && h) db->DestroyColumnFamilyHandle(h);
    }
    if (db) db->Close();
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const std::string& dir, const Options& options) {
  auto impl = std::make_unique<Impl>();
  // Index and filter blocks go to the cache's high-priority pool: reads that
  // touch many data blocks (receipts, reports) would otherwise evict them,
  // and every point lookup would read a whole SST's filter again.
  impl->cache =
      rocksdb::NewLRUCache(options.block_cache_bytes, cache_shard_bits(options.block_cache_bytes),
                           /*strict_capacity_limit=*/false, kHighPriorityPoolRatio);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = impl->cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;  // counted in the cache bound
  // Filters and indexes in small partitions: a whole-file filter of a large
  // SST (MiBs) is bigger than one shard of the block cache, so it was never
  // kept and every Get read and checksummed it again (4 ms per entry read at
  // 10^6 entries). Partitions are cached like data blocks, with priority.
  table.index_type = rocksdb::BlockBasedTableOptions::IndexType::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = kMetadataBlockBytes;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_top_level_index_and_filter = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;

  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf_options.write_buffer_size = options.write_buffer_bytes;
  cf_options.max_write_buffer_number = 2;
  cf_options.compression = rocksdb::kLZ4Compression;
  cf_options.bottommost_compression = rocksdb::kZSTD;

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.paranoid_checks = true;
  db_options.max_open_files = 256;
  db_options.keep_log_file_num = 4;
  db_options.max_total_wal_size = 64ull << 20;
  db_options.db_write_buffer_size = 4 * options.write_buffer_bytes;  // all columns together

  std::vector<rocksdb::ColumnFamilyDescriptor> columns;
  for (int i = 0; i < kColumnCount; ++i) {
    columns.emplace_back(column_name(static_cast<Column>(i)),
                         options_for(static_cast<Column>(i), cf_options));
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(db_options, dir, columns, &impl->handles, &raw)
          : rocksdb::DB::Open(db_options, dir, columns, &impl->handles, &raw);
  if (!s.ok()) return io_error(s, "opening RocksDB");
  impl->db.reset(raw);
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Result<Bytes> Store::get(Column column, ByteView key) const {
  rocksdb::PinnableSlice value;
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  rocksdb::Status s = impl_->db->Get(ro, impl_->cf(column), slice(key), &value);
  if (s.IsNotFound()) return error(ErrorCode::kNotFound, "no such record");
  if (!s.ok()) return io_error(s, "reading");
  return Bytes(value.data(), value.data() + value.size());
}

Status Store::write(WriteBatch& batch, bool sync) {
  // Built afresh on every call: a RocksDB batch kept in the WriteBatch would
  // still hold this write's operations and replay them if the object were
  // written again.
  const WriteBatch::Impl& b = *batch.impl_;
  rocksdb::WriteBatch wb(b.arena.size() + 32 * b.ops.size());  // payload + per-record framing
  for (const auto& op : b.ops) {
    rocksdb::Slice key = slice(b.at(op.key_offset, op.key_size));
    rocksdb::Status s =
        op.remove ? wb.Delete(impl_->cf(op.column), key)
                  : wb.Put(impl_->cf(op.column), key, slice(b.at(op.value_offset, op.value_size)));
    if (!s.ok()) return io_error(s, "building write batch");
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = impl_->db->Write(wo, &wb);
  if (!s.ok()) return io_error(s, "writing batch");
  batch.impl_->ops.clear();
  batch.impl_->arena.clear();
  return Status();
}

Status Store::scan(Column column, ByteView start, ByteView end,
                   const std::function<bool(ByteView, ByteView)>& visit) const {
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper = slice(end);
  if (!end.empty()) ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cf(column)));
  for (it->Seek(slice(start)); it->Valid(); it->Next()) {
    if (!visit(view(it->key()), view(it->value()))) break;
  }
  if (!it->status().ok()) return io_error(it->status(), "scanning");
  return Status();
}

Status Store::scan_reverse(Column column, ByteView start,
                           const std::function<bool(ByteView, ByteView)>& visit) const {
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cf(column)));
  for (it->SeekForPrev(slice(start)); it->Valid(); it->Prev()) {
    if (!visit(view(it->key()), view(it->value()))) break;
  }
  if (!it->status().ok()) return io_error(it->status(), "scanning");
  return Status();
}

uint64_t Store::disk_bytes() const {
  uint64_t total = 0;
  for (auto* h : impl_->handles) {
    uint64_t v = 0;
    if (impl_->db->GetIntProperty(h, rocksdb::DB::Properties::kLiveSstFilesSize, &v)) total += v;
  }
  uint64_t wal = 0;
  if (impl_->db->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &wal)) {
    // memtables mirror the WAL contents that are not yet in SST files
    total += wal;
  }
  return total;
}

Status Store::flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  rocksdb::Status s = impl_->db->Flush(fo, impl_->handles);
  if (!s.ok()) return io_error(s, "flushing");
  return Status();
}

}  // namespace custos::storage
