// The gateway's durable spool: every message that passed the precheck is
// here before its PUBACK leaves the gateway, and leaves only once a node
// answered for it (registered or refused). A RocksDB database:
//   'r' || be64 seq        -> record (SHA-256 of the CBOR, then the CBOR)
// The entry ids of spooled records are kept in memory (rebuilt from the
// records at open), so a redelivered message is spooled once without a read.
// append() only stages; sync() writes every staged append in one synced
// write (the ingest loop calls it once per group of messages, before the
// group's PUBACKs are written). remove() gathers deletions and writes them
// (not synced) kRemovalsPerWrite at a time or at flush_removals(): a
// deletion lost in a crash brings its record back, which is sent again and
// answered "already-registered". Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace custos::gateway {

struct SpoolRecord {
  uint64_t seq = 0;  // assigned by append(), increasing
  Hash256 id{};      // entry id: SHA-256 of the statement
  std::string topic;
  Bytes statement;
  std::string response_topic;  // empty: the device asked for no answer
  Bytes correlation;           // MQTT 5 correlation data, echoed back
  bool want_receipt = false;   // user property receipt=1
  uint64_t received_ms = 0;    // gateway clock
  uint64_t sent_ms = 0;        // device clock (user property sent_ms), 0 if absent
  uint64_t stored_bytes = 0;   // size of the encoded record (set by append/decode)

  Bytes encode() const;  // checksum || CBOR
  static Result<SpoolRecord> decode(uint64_t seq, ByteView bytes);
};

class Spool {
 public:
  struct Options {
    std::string dir;
    uint64_t messages_max = 0;
    uint64_t bytes_max = 0;
  };

  static Result<std::unique_ptr<Spool>> open(const Options& options);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  enum class Append { kAdded, kDuplicate, kFull };
  // Stages `record` (its seq is set) unless a record with the same entry id
  // is spooled already (kDuplicate) or the spool is at its limit (kFull:
  // nothing staged; the caller must not acknowledge the message). Nothing
  // is written, nor readable, before the next sync().
  Result<Append> append(SpoolRecord& record);
  // Writes every staged append in one synced write: durable and readable.
  // After a failed write the spool refuses every append and sync.
  Status sync();
  // Removes a record once a node answered for it (gathered; see above).
  Status remove(const SpoolRecord& record);
  // Writes the gathered removals now (a lane calls it after each batch).
  Status flush_removals();
  // Up to `max` records with seq >= `from`, in seq order.
  Result<std::vector<SpoolRecord>> read_from(uint64_t from, size_t max);
  // The seq the next append will take (records below it may exist).
  uint64_t next_seq() const { return next_seq_.load(); }

  uint64_t depth() const { return depth_.load(); }
  uint64_t bytes() const { return bytes_.load(); }
  uint64_t messages_max() const { return options_.messages_max; }
  // Share of the limit in use (the larger of messages and bytes), 0..1+.
  double fill() const;

 private:
  explicit Spool(Options options);
  bool has_room() const;

  Status write_removals(std::unique_lock<std::mutex>& lock);
  Status delete_legacy_ids();

  Options options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::mutex mu_;                                  // guards what follows
  std::unique_ptr<rocksdb::WriteBatch> staged_;    // appends since the last sync()
  std::unique_ptr<rocksdb::WriteBatch> removals_;  // deletions not yet written
  // Entry id -> seq of the spooled record (staged or written).
  std::unordered_map<Hash256, uint64_t, Hash256Hash> ids_;
  // Set when a synced write failed: its records are lost from the batch, so
  // every later append and sync fails too (nothing may be acknowledged).
  Status failed_;
  std::atomic<uint64_t> next_seq_{1};
  std::atomic<uint64_t> depth_{0};
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace custos::gateway
