// Durable key-value storage on RocksDB, one column family per kind of record.
// The ledger writes one atomic, synced WriteBatch per block; everything else
// here is reads. Thread-safe: RocksDB allows concurrent reads and writes.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/bytes.h"
#include "core/status.h"

namespace custos::storage {

enum class Column : int {
  kMeta = 0,     // head pointer, genesis
  kEntries,      // be64(log index) -> statement bytes
  kEntryIds,     // entry id (32 bytes) -> entry location record
  kNodes,        // u8 level || be64(index) -> 32-byte perfect subtree hash
  kBlocks,       // be64(height) -> block record
  kIndex,        // secondary indexes; keys carry everything, values empty
  kKeys,         // issuer key records and per-key sequence state
  kReceiptSigs,  // be64(height) || be32(node index) -> that node's receipt signature
  kConsensus,    // the node's consensus state: safety rules, blocks voted for
  kDomain,       // state of the domain rules (organisations, devices, orders, ...)
};
inline constexpr int kColumnCount = 10;
const char* column_name(Column column);

struct Options {
  bool read_only = false;
  bool create_if_missing = true;
  // Memory bounds: RocksDB block cache and memtables. Together with the
  // ledger's O(keys + log n) state these keep node RSS flat as the log grows.
  size_t block_cache_bytes = 64ull << 20;
  size_t write_buffer_bytes = 16ull << 20;
};

class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(WriteBatch&&) noexcept;
  WriteBatch& operator=(WriteBatch&&) noexcept;
  void put(Column column, ByteView key, ByteView value);
  void remove(Column column, ByteView key);
  size_t count() const;
  size_t data_bytes() const;

 private:
  friend class Store;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Store {
 public:
  // Opens (or creates) the database in `dir`. kIo with RocksDB's message on
  // failure, e.g. when another process holds the lock.
  static Result<std::unique_ptr<Store>> open(const std::string& dir, const Options& options = {});
  ~Store();

  // kNotFound when absent.
  Result<Bytes> get(Column column, ByteView key) const;
  // Applies the batch atomically; with sync, returns only after fsync. On
  // success the batch is left empty, ready for reuse.
  Status write(WriteBatch& batch, bool sync);

  // Visits keys in [start, end) in order (end empty = to the end of the
  // column) until `visit` returns false.
  Status scan(Column column, ByteView start, ByteView end,
              const std::function<bool(ByteView key, ByteView value)>& visit) const;
  // Visits keys in (.., start] in descending order until `visit` returns false.
  Status scan_reverse(Column column, ByteView start,
                      const std::function<bool(ByteView key, ByteView value)>& visit) const;

  // Bytes of live SST and WAL files (approximate, from RocksDB properties).
  uint64_t disk_bytes() const;
  Status flush();

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::storage
