#include "gateway/spool.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>

#include <filesystem>

#include "codec/cbor.h"
#include "crypto/hash.h"
#include "gateway/limits.h"

namespace custos::gateway {

namespace {

constexpr char kRecordPrefix = 'r';
// Spools written before the ids moved to memory also hold
// 'i' || entry id -> seq; open() deletes them.
constexpr char kLegacyIdPrefix = 'i';
constexpr size_t kRecordFields = 8;

rocksdb::Slice slice(ByteView b) {
  return rocksdb::Slice(reinterpret_cast<const char*>(b.data()), b.size());
}

// Built in fixed-size buffers: GCC 12 warns (array-bounds, a false
// positive) on inserting into a vector made from an initializer list.
Bytes record_key(uint64_t seq) {
  Bytes k(9);
  k[0] = static_cast<uint8_t>(kRecordPrefix);
  for (int i = 0; i < 8; ++i) k[1 + i] = static_cast<uint8_t>(seq >> (56 - 8 * i));
  return k;
}

Status io_error(const rocksdb::Status& s, const char* what) {
  const ErrorCode code = s.IsCorruption() ? ErrorCode::kCorruption : ErrorCode::kIo;
  return error(code, std::string("spool ") + what + ": " + s.ToString());
}

Status corrupt(uint64_t seq, const std::string& why) {
  return error(ErrorCode::kCorruption, "spool record " + std::to_string(seq) + ": " + why);
}

}  // namespace

Bytes SpoolRecord::encode() const {
  cbor::Array a;
  a.push_back(cbor::text(topic));
  a.push_back(cbor::Value::bytes(ByteView(statement)));
  a.push_back(cbor::text(response_topic));
  a.push_back(cbor::Value::bytes(ByteView(correlation)));
  a.push_back(cbor::Value::boolean(want_receipt));
  a.push_back(cbor::Value::uint(received_ms));
  a.push_back(cbor::Value::uint(sent_ms));
  a.push_back(cbor::Value::bytes(ByteView(id.data(), id.size())));
  Bytes body = cbor::encode(cbor::Value::array(std::move(a)));
  const Hash256 sum = crypto::sha256(body);
  Bytes out(sum.size() + body.size());
  std::copy(sum.begin(), sum.end(), out.begin());
  std::copy(body.begin(), body.end(), out.begin() + static_cast<std::ptrdiff_t>(sum.size()));
  return out;
}

Result<SpoolRecord> SpoolRecord::decode(uint64_t seq, ByteView bytes) {
  if (bytes.size() < 32) return corrupt(seq, "shorter than its checksum");
  ByteView body = bytes.subspan(32);
  const Hash256 sum = crypto::sha256(body);
  if (!std::equal(sum.begin(), sum.end(), bytes.begin())) return corrupt(seq, "checksum mismatch");
  auto v = cbor::decode(body);
  if (!v.ok()) return corrupt(seq, v.status().message());
  if (!v->is(cbor::Type::kArray) || v->as_array().size() != kRecordFields) {
    return corrupt(seq, "not an array of 8");
  }
  const cbor::Array& a = v->as_array();
  const bool shape_ok =
      a[0].is(cbor::Type::kText) && a[1].is(cbor::Type::kBytes) && a[2].is(cbor::Type::kText) &&
      a[3].is(cbor::Type::kBytes) && a[4].is(cbor::Type::kBool) && a[5].is(cbor::Type::kUnsigned) &&
      a[6].is(cbor::Type::kUnsigned) && a[7].is(cbor::Type::kBytes) && a[7].as_bytes().size() == 32;
  if (!shape_ok) return corrupt(seq, "field types");
  SpoolRecord r;
  r.seq = seq;
  r.topic = a[0].as_text();
  r.statement = a[1].as_bytes();
  r.response_topic = a[2].as_text();
  r.correlation = a[3].as_bytes();
  r.want_receipt = a[4].as_bool();
  r.received_ms = a[5].as_uint();
  r.sent_ms = a[6].as_uint();
  r.stored_bytes = bytes.size();
  std::copy(a[7].as_bytes().begin(), a[7].as_bytes().end(), r.id.begin());
  if (crypto::sha256(r.statement) != r.id) return corrupt(seq, "entry id does not match");
  return r;
}

Result<std::unique_ptr<Spool>> Spool::open(const Options& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return error(ErrorCode::kIo, "spool: cannot create " + options.dir + ": " + ec.message());
  rocksdb::Options ro;
  ro.create_if_missing = true;
  // Small records that live seconds: keep memtables small and let RocksDB
  // drop deleted records at flush.
  ro.write_buffer_size = 32 << 20;
  ro.max_write_buffer_number = 3;
  ro.max_background_jobs = 2;
  // Records are keyed by an increasing seq: each memtable insert starts
  // from the last one instead of a search from the top of the skiplist.
  ro.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(ro, options.dir, &raw);
  if (!s.ok()) return io_error(s, "open");
  std::unique_ptr<Spool> spool(new Spool(options));
  spool->db_.reset(raw);
  CUSTOS_RETURN_IF_ERROR(spool->delete_legacy_ids());
  // Count what is there, collect the entry ids and find the next seq.
  std::unique_ptr<rocksdb::Iterator> it(spool->db_->NewIterator(rocksdb::ReadOptions()));
  const Bytes first = record_key(0);
  uint64_t last = 0;
  for (it->Seek(slice(first)); it->Valid() && it->key()[0] == kRecordPrefix; it->Next()) {
    if (it->key().size() != 9) return corrupt(0, "bad key length");
    last = read_be64(reinterpret_cast<const uint8_t*>(it->key().data()) + 1);
    ByteView value(reinterpret_cast<const uint8_t*>(it->value().data()), it->value().size());
    CUSTOS_ASSIGN_OR_RETURN(SpoolRecord r, SpoolRecord::decode(last, value));
    spool->ids_[r.id] = last;
    spool->depth_++;
    spool->bytes_ += it->value().size();
  }
  if (!it->status().ok()) return io_error(it->status(), "scan");
  spool->next_seq_ = last + 1;
  return spool;
}

// Point deletions, and only when there are any: a range deletion would mix
// with the memtable insert hints (RocksDB issue 5118).
Status Spool::delete_legacy_ids() {
  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  const std::string first(1, kLegacyIdPrefix);
  for (it->Seek(first); it->Valid() && it->key()[0] == kLegacyIdPrefix; it->Next()) {
    batch.Delete(it->key());
  }
  if (!it->status().ok()) return io_error(it->status(), "scan the old id keys");
  if (batch.Count() == 0) return Status();
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) return io_error(s, "delete the old id keys");
  return Status();
}

Spool::Spool(Options options)
    : options_(std::move(options)),
      staged_(std::make_unique<rocksdb::WriteBatch>()),
      removals_(std::make_unique<rocksdb::WriteBatch>()) {}

Spool::~Spool() {
  if (!db_) return;
  (void)flush_removals();
  (void)db_->Close();
}

bool Spool::has_room() const {
  return depth_.load() < options_.messages_max && bytes_.load() < options_.bytes_max;
}

double Spool::fill() const {
  const double m = static_cast<double>(depth_.load()) / static_cast<double>(options_.messages_max);
  const double b = static_cast<double>(bytes_.load()) / static_cast<double>(options_.bytes_max);
  return std::max(m, b);
}

Result<Spool::Append> Spool::append(SpoolRecord& record) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!failed_.ok()) return failed_;
  if (ids_.count(record.id)) return Append::kDuplicate;
  if (!has_room()) return Append::kFull;
  record.seq = next_seq_.fetch_add(1);
  const Bytes value = record.encode();
  record.stored_bytes = value.size();
  staged_->Put(slice(record_key(record.seq)), slice(value));
  ids_[record.id] = record.seq;
  depth_++;
  bytes_ += value.size();
  return Append::kAdded;
}

Status Spool::sync() {
  auto batch = std::make_unique<rocksdb::WriteBatch>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failed_.ok()) return failed_;
    if (staged_->Count() == 0) return Status();
    std::swap(batch, staged_);
  }
  // The ingest thread is the only appender, and it calls sync(): batches
  // reach the database in seq order.
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = db_->Write(wo, batch.get());
  if (!s.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    failed_ = io_error(s, "append");
    return failed_;
  }
  return Status();
}

Status Spool::remove(const SpoolRecord& record) {
  std::unique_lock<std::mutex> lock(mu_);
  // Only this record's own entry: a crash that lost a gathered removal can
  // leave an older record with the same id beside a newer one.
  if (auto it = ids_.find(record.id); it != ids_.end() && it->second == record.seq) {
    ids_.erase(it);
  }
  removals_->Delete(slice(record_key(record.seq)));
  depth_--;
  bytes_ -= std::min<uint64_t>(bytes_.load(), record.stored_bytes);
  if (removals_->Count() < limits::kSpoolRemovalsPerWrite) return Status();
  return write_removals(lock);
}

Status Spool::flush_removals() {
  std::unique_lock<std::mutex> lock(mu_);
  return write_removals(lock);
}

Status Spool::write_removals(std::unique_lock<std::mutex>& lock) {
  if (removals_->Count() == 0) return Status();
  auto batch = std::make_unique<rocksdb::WriteBatch>();
  std::swap(batch, removals_);
  lock.unlock();
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), batch.get());
  if (!s.ok()) return io_error(s, "remove");
  return Status();
}

Result<std::vector<SpoolRecord>> Spool::read_from(uint64_t from, size_t max) {
  std::vector<SpoolRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  const Bytes first = record_key(from);
  for (it->Seek(slice(first)); it->Valid() && it->key()[0] == kRecordPrefix && out.size() < max;
       it->Next()) {
    if (it->key().size() != 9) return corrupt(0, "bad key length");
    const uint64_t seq = read_be64(reinterpret_cast<const uint8_t*>(it->key().data()) + 1);
    ByteView value(reinterpret_cast<const uint8_t*>(it->value().data()), it->value().size());
    CUSTOS_ASSIGN_OR_RETURN(SpoolRecord r, SpoolRecord::decode(seq, value));
    out.push_back(std::move(r));
  }
  if (!it->status().ok()) return io_error(it->status(), "scan");
  return out;
}

}  // namespace custos::gateway
