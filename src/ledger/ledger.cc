#include "ledger/ledger.h"

#include <algorithm>
#include <cassert>
#include <filesystem>
#include <map>

#include "core/quorum.h"
#include "cose/sign1.h"
#include "crypto/hash.h"
#include "ledger/records.h"

namespace custos::ledger {

using storage::Column;

namespace {
Head head_of(const BlockRecord& b) {
  return Head{b.header.height, b.header.log_size, b.header.root, b.header_hash(), b.header.time_ms};
}

Bytes receipt_signature_key(uint64_t height, uint32_t node) {
  Bytes k = records::be64_key(height);
  append_be32(k, node);
  return k;
}

Bytes encode_node_signature(const NodeSignature& s) {
  cbor::Array a{cbor::Value::bytes(ByteView(s.protected_bytes)),
                cbor::Value::bytes(ByteView(s.signature))};
  return cbor::encode(cbor::Value::array(std::move(a)));
}

Result<NodeSignature> decode_node_signature(uint32_t node, ByteView bytes) {
  auto v = cbor::decode(bytes);
  if (!v.ok() || !v->is(cbor::Type::kArray) || v->as_array().size() != 2 ||
      !v->as_array()[0].is(cbor::Type::kBytes) || !v->as_array()[1].is(cbor::Type::kBytes)) {
    return error(ErrorCode::kCorruption, "unreadable receipt signature record");
  }
  return NodeSignature{node, v->as_array()[0].as_bytes(), v->as_array()[1].as_bytes()};
}

Bytes gap_record(const SequenceOutcome& gap) {
  cbor::Array a{cbor::Value::uint(gap.expected), cbor::Value::uint(gap.got)};
  return cbor::encode(cbor::Value::array(std::move(a)));
}

cbor::Value text_array(const std::vector<std::string>& texts) {
  cbor::Array a;
  a.reserve(texts.size());
  for (const auto& t : texts) a.push_back(cbor::text(t));
  return cbor::Value::array(std::move(a));
}

Bytes annotations_record(const RuleOutcome& o) {
  if (o.refs.empty() && o.flags.empty()) return {};
  cbor::Map m;
  m.emplace_back(cbor::text("flags"), text_array(o.flags));
  m.emplace_back(cbor::text("refs"), text_array(o.refs));
  return cbor::encode(cbor::Value::map(std::move(m)));
}

std::vector<std::string> texts_of(const cbor::Value& map, const char* field) {
  std::vector<std::string> out;
  const cbor::Value* a = map.find(field);
  if (!a || !a->is(cbor::Type::kArray)) return out;
  for (const auto& t : a->as_array()) {
    if (t.is(cbor::Type::kText)) out.push_back(t.as_text());
  }
  return out;
}

// The code of a flag: the text before ':' ("sequence-gap: ..." -> "sequence-gap").
std::string_view flag_code(std::string_view flag) {
  return flag.substr(0, flag.find(':'));
}

// Pending writes of rule records: a value, or nullopt for a removal.
using RuleWrites = std::map<Bytes, std::optional<Bytes>>;

// One statement's writes, kept apart until the statement is accepted.
class StagedRuleState : public RuleState {
 public:
  explicit StagedRuleState(const RuleState& parent) : parent_(parent) {}
  Result<std::optional<Bytes>> get(ByteView key) const override {
    auto it = writes_.find(Bytes(key.begin(), key.end()));
    if (it != writes_.end()) return it->second;
    return parent_.get(key);
  }
  void put(ByteView key, ByteView value) override {
    writes_[Bytes(key.begin(), key.end())] = Bytes(value.begin(), value.end());
  }
  void remove(ByteView key) override { writes_[Bytes(key.begin(), key.end())] = std::nullopt; }
  RuleWrites& writes() { return writes_; }

 private:
  const RuleState& parent_;
  RuleWrites writes_;
};
}  // namespace

// Recently read or written rule records (a value, or nullopt for "absent"),
// so execution does not go to RocksDB for the same few devices, orders and
// organisations statement after statement. Sequencer thread only. Updated
// only with what a block durably wrote, so it never differs from the store.
class RuleRecordCache {
 public:
  static constexpr size_t kRecordsMax = 1 << 16;

  const std::optional<Bytes>* find(const Bytes& key) const {
    auto it = records_.find(key);
    return it == records_.end() ? nullptr : &it->second;
  }
  void put(const Bytes& key, std::optional<Bytes> value) {
    // Crude but bounded: start over when full. The working set (devices and
    // orders active now) is far smaller than the bound.
    if (records_.size() >= kRecordsMax && !records_.count(key)) records_.clear();
    records_[key] = std::move(value);
  }
  void clear() { records_.clear(); }

 private:
  std::map<Bytes, std::optional<Bytes>> records_;
};

// The rules' writes of the block being built, over the stored records.
class BlockRuleState : public RuleState {
 public:
  BlockRuleState(const storage::Store& store, RuleRecordCache& cache)
      : store_(store), cache_(cache) {}
  Result<std::optional<Bytes>> get(ByteView key) const override {
    Bytes k(key.begin(), key.end());
    auto it = writes_.find(k);
    if (it != writes_.end()) return it->second;
    if (const auto* cached = cache_.find(k)) return *cached;
    auto stored = store_.get(Column::kDomain, key);
    std::optional<Bytes> value;
    if (stored.ok()) {
      value = std::move(stored).value();
    } else if (stored.status().code() != ErrorCode::kNotFound) {
      return stored.status();
    }
    cache_.put(k, value);
    return value;
  }
  void put(ByteView key, ByteView value) override {
    writes_[Bytes(key.begin(), key.end())] = Bytes(value.begin(), value.end());
  }
  void remove(ByteView key) override { writes_[Bytes(key.begin(), key.end())] = std::nullopt; }
  void absorb(RuleWrites& staged) {
    for (auto& [k, v] : staged) writes_[k] = std::move(v);
    staged.clear();
  }
  void write_to(storage::WriteBatch& wb) const {
    for (const auto& [k, v] : writes_) {
      if (v)
        wb.put(Column::kDomain, k, *v);
      else
        wb.remove(Column::kDomain, k);
    }
  }
  // After the block's batch is durably written.
  void written() {
    for (auto& [k, v] : writes_) cache_.put(k, std::move(v));
    writes_.clear();
  }

 private:
  const storage::Store& store_;
  RuleRecordCache& cache_;
  RuleWrites writes_;
};

Ledger::Ledger(LedgerConfig config)
    : config_(std::move(config)), rule_cache_(std::make_unique<RuleRecordCache>()) {}
Ledger::~Ledger() {
  // A clean stop flushes the memtables, so the next start need not replay
  // the write-ahead log and the files on disk hold the data at rest.
  if (store_ && !config_.storage.read_only) {
    Status s = store_->flush();
    (void)s;  // nothing left to do about it: the WAL still has the data
  }
}

Result<std::unique_ptr<Ledger>> Ledger::open(LedgerConfig config) {
  const auto& nodes = config.genesis.nodes;
  const Hash256 own_kid = config.node_key.public_key().kid();
  auto own = std::find_if(nodes.begin(), nodes.end(),
                          [&](const NamedKey& n) { return n.key.kid() == own_kid; });
  if (own == nodes.end()) {
    return error(ErrorCode::kInvalidArgument, "the node key is not one of the genesis node keys");
  }
  const auto own_index = static_cast<uint32_t>(own - nodes.begin());
  const size_t quorum = quorum_size(nodes.size());
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) return error(ErrorCode::kIo, "cannot create " + config.data_dir + ": " + ec.message());
  std::unique_ptr<Ledger> ledger(new Ledger(std::move(config)));
  ledger->node_index_ = own_index;
  ledger->quorum_ = quorum;
  CUSTOS_ASSIGN_OR_RETURN(ledger->store_, storage::Store::open(ledger->config_.data_dir + "/db",
                                                               ledger->config_.storage));
  auto stored_genesis = ledger->store_->get(Column::kMeta, as_view(records::kMetaGenesis));
  if (!stored_genesis.ok() && stored_genesis.status().code() != ErrorCode::kNotFound) {
    return stored_genesis.status();
  }
  if (!stored_genesis.ok()) {
    CUSTOS_RETURN_IF_ERROR(ledger->initialize());
  } else if (crypto::sha256(*stored_genesis) != ledger->config_.genesis.hash) {
    return error(ErrorCode::kConflict, "data directory " + ledger->config_.data_dir +
                                           " belongs to another genesis configuration");
  }
  CUSTOS_RETURN_IF_ERROR(ledger->load());
  return ledger;
}

// Writes the genesis file, the genesis admin keys and block 0 in one batch.
Status Ledger::initialize() {
  const Genesis& g = config_.genesis;
  for (const auto& admin : g.admins) working_keys_.add_genesis_admin(admin);
  BlockHeader header;
  header.height = 0;
  header.log_size = 0;
  header.root = merkle::empty_root();
  header.time_ms = g.created_ms;
  header.proposer = Hash256{};  // every node writes the same block 0
  header.genesis_hash = g.hash;
  BlockRecord block = seal_block(header, config_.node_key, config_.node_name);

  storage::WriteBatch wb;
  wb.put(Column::kMeta, as_view(records::kMetaGenesis), g.json_bytes);
  for (const auto& kid : working_keys_.take_changed()) {
    wb.put(Column::kKeys, records::key_record_key(kid), working_keys_.find(kid)->encode());
  }
  wb.put(Column::kBlocks, records::be64_key(0), block.encode());
  wb.put(Column::kMeta, as_view(records::kMetaHead), records::be64_key(0));
  return store_->write(wb, /*sync=*/true);
}

Status Ledger::load() {
  CUSTOS_ASSIGN_OR_RETURN(Bytes head_bytes,
                          store_->get(Column::kMeta, as_view(records::kMetaHead)));
  if (head_bytes.size() != 8)
    return error(ErrorCode::kCorruption, "head record has the wrong size");
  CUSTOS_ASSIGN_OR_RETURN(BlockRecord newest, block(read_be64(head_bytes.data())));
  records::StoreNodeReader reader(*store_);
  CUSTOS_ASSIGN_OR_RETURN(frontier_, merkle::Frontier::load(reader, newest.header.log_size));
  if (frontier_.root() != newest.header.root) {
    return error(ErrorCode::kCorruption, "stored log nodes do not reproduce the root of block " +
                                             std::to_string(newest.header.height));
  }
  KeyRegistry keys;
  Bytes prefix{'k'};
  Bytes end{'l'};
  Status scan_status;
  CUSTOS_RETURN_IF_ERROR(
      store_->scan(Column::kKeys, prefix, end, [&](ByteView key, ByteView value) {
        auto state = KeyState::decode(value);
        if (!state.ok() || key.size() != 33) {
          scan_status = error(ErrorCode::kCorruption, "unreadable key record");
          return false;
        }
        Hash256 kid;
        std::copy(key.begin() + 1, key.end(), kid.begin());
        keys.put(kid, std::move(state).value());
        return true;
      }));
  CUSTOS_RETURN_IF_ERROR(scan_status);
  working_keys_ = std::move(keys);
  std::unique_lock lock(published_mu_);
  published_keys_ = working_keys_.all();
  head_ = head_of(newest);
  return Status();
}

Result<Admitted> Ledger::admit(ByteView bytes) const {
  if (bytes.size() > limits::kStatementBytesMax) {
    return error(ErrorCode::kTooLarge, "statement of " + std::to_string(bytes.size()) +
                                           " bytes exceeds the limit of " +
                                           std::to_string(limits::kStatementBytesMax));
  }
  CUSTOS_ASSIGN_OR_RETURN(cose::Statement statement, cose::parse_statement(bytes));
  std::optional<KeyState> signer;
  {
    std::shared_lock lock(published_mu_);
    auto it = published_keys_.find(statement.header.kid);
    if (it == published_keys_.end()) {
      return error(ErrorCode::kUnknownKey,
                   "kid " + to_hex(statement.header.kid) + " is not registered");
    }
    if (it->second.revoked()) {
      return error(ErrorCode::kRevokedKey, "kid " + to_hex(statement.header.kid) +
                                               " was revoked at log index " +
                                               std::to_string(it->second.revoked_index));
    }
    signer = it->second;
  }
  const Rules* rules = config_.rules.get();
  const bool by_rules = rules && rules->defines(statement.header.content_type);
  CUSTOS_RETURN_IF_ERROR(check_content(statement, *signer, by_rules));
  if (by_rules) CUSTOS_RETURN_IF_ERROR(rules->check(statement, *signer));
  CUSTOS_RETURN_IF_ERROR(cose::verify_statement(statement, signer->key));
  Admitted out{std::move(statement), {}};
  out.id = crypto::sha256(out.statement.bytes);
  return out;
}

Result<std::vector<Result<Registered>>> Ledger::append_block(std::vector<Admitted> batch,
                                                             uint64_t now_ms) {
  BlockContext context;
  context.time_ms = now_ms;
  context.proposer = config_.node_key.public_key().kid();
  return append_block(std::move(batch), context);
}

Result<std::vector<Result<Registered>>> Ledger::append_block(std::vector<Admitted> batch,
                                                             const BlockContext& context) {
  std::vector<BlockInput> one;
  one.push_back(BlockInput{std::move(batch), context});
  CUSTOS_ASSIGN_OR_RETURN(auto results, append_blocks(std::move(one)));
  return std::move(results.front());
}

Result<std::vector<std::vector<Result<Registered>>>> Ledger::append_blocks(
    std::vector<BlockInput> blocks) {
  if (failed_) return error(ErrorCode::kUnavailable, "the ledger stopped after a storage failure");
  Head working = head();
  const merkle::Frontier frontier_before = frontier_;
  storage::WriteBatch wb;
  std::set<Hash256> changed;
  std::vector<std::pair<Hash256, records::EntryLocation>> entry_ids;
  bool wrote_block = false;
  std::vector<std::vector<Result<Registered>>> all;
  all.reserve(blocks.size());
  // One view of the rules' records for every block of this write: a later
  // block sees what an earlier one wrote before any of it is on disk.
  BlockRuleState rule_state(*store_, *rule_cache_);
  for (BlockInput& in : blocks) {
    all.push_back(stage_block(in.batch, in.context, working, wb, changed, entry_ids, wrote_block,
                              rule_state));
  }
  rule_state.write_to(wb);
  // Entry ids are uniformly random keys: inserted in the order of the log,
  // each one is a search of the memtable's skip list from its top, which
  // profiles showed as the largest cost of a block write. Sorted, each
  // insert starts from where the previous one ended (the column's memtable
  // insert hint, storage/store.cc).
  std::sort(entry_ids.begin(), entry_ids.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [id, location] : entry_ids) wb.put(Column::kEntryIds, id, location.encode());
  // Each key's state after the last block that changed it; the blocks in
  // between read it from working_keys_, not from the store.
  for (const auto& kid : changed) {
    wb.put(Column::kKeys, records::key_record_key(kid), working_keys_.find(kid)->encode());
  }
  if (wrote_block)
    wb.put(Column::kMeta, as_view(records::kMetaHead), records::be64_key(working.height));
  if (wb.count() == 0) return all;
  // Unsynced when no block is written: only meta records (which consensus
  // block was executed), which a crash may lose and execution redoes.
  Status written = store_->write(wb, /*sync=*/wrote_block);
  if (!written.ok()) {
    if (wrote_block) {
      // The in-memory state is now ahead of the disk; refuse to go on rather
      // than acknowledge anything that may not be there after a restart.
      failed_ = true;
      frontier_ = frontier_before;
    }
    rule_cache_->clear();
    return written;
  }
  rule_state.written();
  std::unique_lock lock(published_mu_);
  for (const auto& kid : changed) published_keys_[kid] = *working_keys_.find(kid);
  head_ = working;
  return all;
}

std::vector<Result<Registered>> Ledger::stage_block(
    std::vector<Admitted>& batch, const BlockContext& context, Head& working,
    storage::WriteBatch& wb, std::set<Hash256>& changed_keys,
    std::vector<std::pair<Hash256, records::EntryLocation>>& entry_ids, bool& wrote_block,
    BlockRuleState& rule_state) {
  const Head before = working;
  const uint64_t height = before.height + 1;
  std::vector<Result<Registered>> results;
  results.reserve(batch.size());
  uint64_t index = frontier_.size();
  // Leaf hashes (level 0) are not stored: the entry is, and hashing it again
  // when a proof needs it is cheaper than a record per entry (see records.h).
  const auto store_node = [&](const merkle::Frontier::NewNode& n) {
    if (n.level == 0) return;
    wb.put(Column::kNodes, records::node_key(n.level, n.index), n.hash);
  };

  const uint64_t time_ms = std::max(context.time_ms, before.time_ms);  // never goes back
  for (Admitted& a : batch) {
    auto reg = register_one(a, index, height, time_ms, rule_state, wb, entry_ids);
    if (!reg.ok()) {
      results.emplace_back(reg.status());
      continue;
    }
    frontier_.append(merkle::leaf_hash(a.statement.bytes), store_node);
    results.emplace_back(std::move(reg).value());
    ++index;
  }
  for (const auto& kid : working_keys_.take_changed()) changed_keys.insert(kid);
  for (const auto& [key, value] : context.meta) wb.put(Column::kMeta, as_view(key), value);
  if (index == before.log_size) return results;  // everything refused (or nothing given): no block

  BlockHeader header;
  header.height = height;
  header.prev_hash = before.header_hash;
  header.log_size = index;
  header.root = frontier_.root();
  header.time_ms = time_ms;
  header.proposer = context.proposer;
  header.entry_count = index - before.log_size;
  BlockRecord record = seal_block(header, config_.node_key, config_.node_name);
  wb.put(Column::kReceiptSigs, receipt_signature_key(height, node_index_),
         encode_node_signature({node_index_, record.receipt_protected, record.root_signature}));
  wb.put(Column::kBlocks, records::be64_key(height), record.encode());
  working = head_of(record);
  wrote_block = true;
  return results;
}

Result<Registered> Ledger::register_one(
    Admitted& a, uint64_t index, uint64_t height, uint64_t time_ms, BlockRuleState& rule_state,
    storage::WriteBatch& wb, std::vector<std::pair<Hash256, records::EntryLocation>>& entry_ids) {
  const cose::StatementHeader& h = a.statement.header;
  CUSTOS_ASSIGN_OR_RETURN(const KeyState* signer, working_keys_.check_signer(h));
  RuleOutcome rules_outcome;
  StagedRuleState staged(rule_state);
  if (const Rules* rules = config_.rules.get()) {
    RuleContext ctx{index, time_ms, signer, &working_keys_};
    CUSTOS_ASSIGN_OR_RETURN(rules_outcome, rules->apply(a.statement, ctx, staged));
    assert(rules_outcome.refs.size() <= kRefsPerEntryMax);
    assert(rules_outcome.flags.size() <= kFlagsPerEntryMax);
  }
  CUSTOS_ASSIGN_OR_RETURN(SequenceOutcome seq,
                          working_keys_.apply(a.statement, index, rules_outcome.register_keys,
                                              rules_outcome.revoke_keys));
  rule_state.absorb(staged.writes());

  Bytes index_key = records::be64_key(index);
  wb.put(Column::kEntries, index_key, a.statement.bytes);
  entry_ids.emplace_back(a.id,
                         records::EntryLocation{index, height, annotations_record(rules_outcome)});
  wb.put(Column::kIndex, records::index_key(records::kIndexIssuer, h.issuer, index), {});
  wb.put(Column::kIndex, records::index_key(records::kIndexSubject, h.subject, index), {});
  wb.put(Column::kIndex, records::index_key(records::kIndexType, h.content_type, index), {});
  Registered reg{a.id, index, height, std::nullopt, {}};
  if (seq.gap()) {
    Bytes gap_key{records::kIndexGap};
    append_be64(gap_key, index);
    wb.put(Column::kIndex, gap_key, gap_record(seq));
    reg.gap = seq;
  }
  for (const auto& ref : rules_outcome.refs)
    wb.put(Column::kIndex, records::index_key(records::kIndexRef, ref, index), {});
  for (const auto& flag : rules_outcome.flags)
    wb.put(Column::kIndex, records::index_key(records::kIndexFlag, flag_code(flag), index), {});
  reg.flags = std::move(rules_outcome.flags);
  return reg;
}

Head Ledger::head() const {
  std::shared_lock lock(published_mu_);
  return head_;
}

size_t Ledger::key_count() const {
  std::shared_lock lock(published_mu_);
  return published_keys_.size();
}

Result<KeyState> Ledger::key(const Hash256& kid) const {
  std::shared_lock lock(published_mu_);
  auto it = published_keys_.find(kid);
  if (it == published_keys_.end())
    return error(ErrorCode::kNotFound, "kid " + to_hex(kid) + " is not registered");
  return it->second;
}

std::vector<std::pair<Hash256, KeyState>> Ledger::keys() const {
  std::shared_lock lock(published_mu_);
  return {published_keys_.begin(), published_keys_.end()};
}

Result<Bytes> Ledger::rule_record(ByteView key) const {
  return store_->get(Column::kDomain, key);
}

Status Ledger::scan_rule_records(
    ByteView prefix, const std::function<bool(ByteView key, ByteView value)>& visit) const {
  return scan_rule_records(prefix, prefix, visit);
}

Status Ledger::scan_rule_records(
    ByteView prefix, ByteView start,
    const std::function<bool(ByteView key, ByteView value)>& visit) const {
  // The end of the prefix range: the prefix with its last byte below 0xff
  // incremented (an all-0xff prefix scans to the end of the column).
  Bytes end(prefix.begin(), prefix.end());
  while (!end.empty() && end.back() == 0xff) end.pop_back();
  if (!end.empty()) ++end.back();
  // A start below the prefix begins at the prefix; one at or past the end
  // visits nothing.
  const bool below =
      std::lexicographical_compare(start.begin(), start.end(), prefix.begin(), prefix.end());
  const ByteView from = below ? prefix : start;
  if (!end.empty() &&
      !std::lexicographical_compare(from.begin(), from.end(), end.begin(), end.end()))
    return Status();
  return store_->scan(Column::kDomain, from, end, visit);
}

Result<BlockRecord> Ledger::block(uint64_t height) const {
  auto bytes = store_->get(Column::kBlocks, records::be64_key(height));
  if (!bytes.ok()) {
    if (bytes.status().code() == ErrorCode::kNotFound) {
      return error(ErrorCode::kNotFound, "no block at height " + std::to_string(height));
    }
    return bytes.status();
  }
  return BlockRecord::decode(*bytes);
}

Result<EntryInfo> Ledger::entry_by_location(const Hash256& id,
                                            const records::EntryLocation& loc) const {
  const uint64_t index = loc.index;
  CUSTOS_ASSIGN_OR_RETURN(Bytes bytes, store_->get(Column::kEntries, records::be64_key(index)));
  if (crypto::sha256(bytes) != id) {
    return error(ErrorCode::kCorruption,
                 "entry " + std::to_string(index) + " does not match its id");
  }
  return entry_from_bytes(id, loc, std::move(bytes));
}

Result<EntryInfo> Ledger::entry_from_bytes(const Hash256& id, const records::EntryLocation& loc,
                                           Bytes bytes) const {
  const uint64_t index = loc.index;
  const uint64_t height = loc.height;
  CUSTOS_ASSIGN_OR_RETURN(cose::Statement st, cose::parse_statement(bytes));
  CUSTOS_ASSIGN_OR_RETURN(BlockRecord b, block(height));
  EntryInfo info;
  info.id = id;
  info.index = index;
  info.height = height;
  info.registered_ms = b.header.time_ms;
  info.header = st.header;
  info.statement = std::move(bytes);
  Bytes gap_key{records::kIndexGap};
  append_be64(gap_key, index);
  if (auto gap = store_->get(Column::kIndex, gap_key); gap.ok()) {
    auto v = cbor::decode(*gap);
    if (v.ok() && v->is(cbor::Type::kArray) && v->as_array().size() == 2) {
      info.gap = SequenceOutcome{v->as_array()[0].as_uint(), v->as_array()[1].as_uint()};
    }
  }
  if (!loc.annotations.empty()) {
    auto v = cbor::decode(loc.annotations);
    if (v.ok() && v->is(cbor::Type::kMap)) {
      info.refs = texts_of(*v, "refs");
      info.flags = texts_of(*v, "flags");
    }
  }
  return info;
}

Result<records::EntryLocation> Ledger::locate(const Hash256& id) const {
  auto loc_bytes = store_->get(Column::kEntryIds, id);
  if (!loc_bytes.ok()) {
    if (loc_bytes.status().code() == ErrorCode::kNotFound) {
      return error(ErrorCode::kNotFound, "no entry with id " + to_hex(id));
    }
    return loc_bytes.status();
  }
  return records::EntryLocation::decode(*loc_bytes);
}

Result<EntryInfo> Ledger::entry(const Hash256& id) const {
  CUSTOS_ASSIGN_OR_RETURN(records::EntryLocation loc, locate(id));
  return entry_by_location(id, loc);
}

Result<EntryInfo> Ledger::entry_at(uint64_t index) const {
  if (index >= head().log_size)
    return error(ErrorCode::kNotFound, "no entry at index " + std::to_string(index));
  CUSTOS_ASSIGN_OR_RETURN(Bytes bytes, store_->get(Column::kEntries, records::be64_key(index)));
  // Queries call this for every row they examine: read and hash the entry
  // once, and take only its block height from the id map.
  const Hash256 id = crypto::sha256(bytes);
  CUSTOS_ASSIGN_OR_RETURN(records::EntryLocation loc, locate(id));
  if (loc.index != index) {
    return error(ErrorCode::kCorruption,
                 "entry " + std::to_string(index) + " does not match its id");
  }
  return entry_from_bytes(id, loc, std::move(bytes));
}

Result<Bytes> Ledger::receipt(const Hash256& id) const {
  CUSTOS_ASSIGN_OR_RETURN(records::EntryLocation loc, locate(id));
  CUSTOS_ASSIGN_OR_RETURN(BlockRecord b, block(loc.height));
  // RFC 9162 gives the only entry of a 1-entry tree an empty path, but RFC
  // 9942's CDDL requires at least one hash, so strict verifiers would refuse
  // that receipt. Prove it against a newer signed block instead once there
  // is a second entry; every other receipt is against its own block.
  if (b.header.log_size == 1 && head().log_size > 1) {
    auto newer = signed_block_at_or_below(head().height);
    if (newer.ok() && newer->header.log_size > 1) b = std::move(newer).value();
  }
  CUSTOS_ASSIGN_OR_RETURN(std::vector<NodeSignature> sigs, receipt_signatures(b.header.height));
  if (sigs.size() < quorum_) {
    return error(ErrorCode::kUnavailable, "block " + std::to_string(b.header.height) +
                                              " is signed by " + std::to_string(sigs.size()) +
                                              " of the " + std::to_string(quorum_) +
                                              " nodes a receipt needs so far; retry shortly");
  }
  records::StoreNodeReader reader(*store_);
  cose::InclusionProof proof{b.header.log_size, loc.index, {}};
  CUSTOS_ASSIGN_OR_RETURN(proof.path,
                          merkle::inclusion_proof(reader, loc.index, b.header.log_size));
  std::vector<Bytes> receipts;
  receipts.reserve(sigs.size());
  for (const NodeSignature& s : sigs) {
    receipts.push_back(cose::encode_receipt(s.protected_bytes, proof, s.signature));
  }
  return cose::encode_receipt_bundle(receipts);
}

Result<std::vector<NodeSignature>> Ledger::receipt_signatures(uint64_t height) const {
  std::vector<NodeSignature> out;
  Status bad;
  CUSTOS_RETURN_IF_ERROR(store_->scan(
      Column::kReceiptSigs, records::be64_key(height), records::be64_key(height + 1),
      [&](ByteView key, ByteView value) {
        if (key.size() != 12) {
          bad = error(ErrorCode::kCorruption, "receipt signature key has the wrong size");
          return false;
        }
        auto s = decode_node_signature(read_be32(key.data() + 8), value);
        if (!s.ok()) {
          bad = s.status();
          return false;
        }
        out.push_back(std::move(s).value());
        return true;
      }));
  CUSTOS_RETURN_IF_ERROR(bad);
  return out;
}

size_t Ledger::receipt_signature_count(uint64_t height) const {
  auto sigs = receipt_signatures(height);
  return sigs.ok() ? sigs->size() : 0;
}

Result<BlockRecord> Ledger::signed_block_at_or_below(uint64_t height) const {
  // Signatures arrive within moments of a block; a few blocks back is enough.
  constexpr uint64_t kBlocksToTry = 8;
  for (uint64_t h = height; h > 0 && height - h < kBlocksToTry; --h) {
    if (receipt_signature_count(h) >= quorum_) return block(h);
  }
  return error(ErrorCode::kUnavailable, "no recent block is signed by a quorum yet");
}

Result<NodeSignature> Ledger::own_receipt_signature(uint64_t height) const {
  CUSTOS_ASSIGN_OR_RETURN(BlockRecord b, block(height));
  return NodeSignature{node_index_, b.receipt_protected, b.root_signature};
}

Status Ledger::add_receipt_signature(uint64_t height, const NodeSignature& sig) {
  const auto& nodes = config_.genesis.nodes;
  if (sig.node >= nodes.size()) {
    return error(ErrorCode::kInvalidArgument, "receipt signature from node " +
                                                  std::to_string(sig.node) + " of " +
                                                  std::to_string(nodes.size()));
  }
  if (height == 0) return error(ErrorCode::kInvalidArgument, "block 0 has no receipts");
  CUSTOS_ASSIGN_OR_RETURN(BlockRecord b, block(height));
  // Parse the header with the receipt parser itself (a receipt with an empty
  // proof around it), so a signature kept here is one verifiers will accept.
  cose::InclusionProof shape{b.header.log_size, 0, {}};
  CUSTOS_ASSIGN_OR_RETURN(cose::Receipt parsed, cose::parse_receipt(cose::encode_receipt(
                                                    sig.protected_bytes, shape, sig.signature)));
  const crypto::PublicKey& key = nodes[sig.node].key;
  if (parsed.header.kid != key.kid() || parsed.header.alg != key.algorithm()) {
    return error(ErrorCode::kBadSignature,
                 "receipt signature header does not name node " + nodes[sig.node].name + "'s key");
  }
  if (parsed.header.tree_size != b.header.log_size) {
    return error(ErrorCode::kBadSignature, "receipt signature is for another tree size");
  }
  Status valid =
      key.verify(cose::sig_structure(sig.protected_bytes, {}, b.header.root), sig.signature);
  if (!valid.ok()) {
    return error(ErrorCode::kBadSignature, "receipt signature of node " + nodes[sig.node].name +
                                               " does not verify over block " +
                                               std::to_string(height) + "'s root");
  }
  storage::WriteBatch wb;
  wb.put(Column::kReceiptSigs, receipt_signature_key(height, sig.node), encode_node_signature(sig));
  return store_->write(wb, /*sync=*/false);
}

Result<Bytes> Ledger::meta(std::string_view key) const {
  return store_->get(Column::kMeta, as_view(key));
}

Result<Bytes> Ledger::checkpoint() const {
  CUSTOS_ASSIGN_OR_RETURN(BlockRecord b, block(head().height));
  return checkpoint_bytes(b, config_.node_key.algorithm());
}

Result<cose::ConsistencyProof> Ledger::consistency(uint64_t size1, uint64_t size2) const {
  const uint64_t size = head().log_size;
  if (size1 == 0 || size1 > size2 || size2 > size) {
    return error(ErrorCode::kInvalidArgument, "need 0 < from <= to <= " + std::to_string(size));
  }
  records::StoreNodeReader reader(*store_);
  cose::ConsistencyProof proof{size1, size2, {}};
  CUSTOS_ASSIGN_OR_RETURN(proof.path, merkle::consistency_proof(reader, size1, size2));
  return proof;
}

// Block times never decrease, so a time range is a range of log indexes,
// found by binary search over block heights.
Result<std::pair<uint64_t, uint64_t>> Ledger::index_range_for_time(const Query& q,
                                                                   const Head& head) const {
  // first_block(t): the lowest height whose time_ms >= t (head.height + 1 if none).
  auto first_block = [&](uint64_t t) -> Result<uint64_t> {
    uint64_t lo = 1, hi = head.height + 1;
    while (lo < hi) {
      uint64_t mid = lo + (hi - lo) / 2;
      CUSTOS_ASSIGN_OR_RETURN(BlockRecord b, block(mid));
      if (b.header.time_ms >= t)
        hi = mid;
      else
        lo = mid + 1;
    }
    return lo;
  };
  // Entries before the block at `height` = log size after the block before it.
  auto size_before = [&](uint64_t height) -> Result<uint64_t> {
    if (height > head.height) return head.log_size;
    CUSTOS_ASSIGN_OR_RETURN(BlockRecord b, block(height));
    return b.header.log_size - b.header.entry_count;
  };
  uint64_t begin = 0, end = head.log_size;
  if (q.from_ms) {
    CUSTOS_ASSIGN_OR_RETURN(uint64_t h, first_block(*q.from_ms));
    CUSTOS_ASSIGN_OR_RETURN(begin, size_before(h));
  }
  if (q.to_ms) {
    CUSTOS_ASSIGN_OR_RETURN(uint64_t h, first_block(*q.to_ms));
    CUSTOS_ASSIGN_OR_RETURN(end, size_before(h));
  }
  return std::make_pair(begin, end);
}

Result<QueryPage> Ledger::query(const Query& q) const {
  const Head h = head();
  CUSTOS_ASSIGN_OR_RETURN(auto range, index_range_for_time(q, h));
  // [begin, end): the log indexes this page may look at.
  uint64_t begin = range.first, end = range.second;
  if (!q.descending)
    begin = std::max(begin, q.cursor);
  else if (q.cursor != 0)
    end = std::min(end, q.cursor);
  const size_t limit = std::clamp<size_t>(q.limit, 1, limits::kQueryPageEntriesMax);
  QueryPage page;
  if (begin >= end) return page;

  const auto has = [](const std::vector<std::string>& v, std::string_view x, bool code_only) {
    return std::any_of(v.begin(), v.end(), [&](const std::string& t) {
      return code_only ? flag_code(t) == x : t == x;
    });
  };
  auto matches = [&](const EntryInfo& e) {
    return (!q.issuer || e.header.issuer == *q.issuer) &&
           (!q.subject || e.header.subject == *q.subject) &&
           (!q.content_type || e.header.content_type == *q.content_type) &&
           (!q.ref || has(e.refs, *q.ref, false)) && (!q.flag || has(e.flags, *q.flag, true));
  };
  Status failure;
  size_t scanned = 0;
  auto visit_index = [&](uint64_t index) -> bool {
    if (page.entries.size() == limit || scanned == kQueryScanMax) {
      page.next_cursor = q.descending ? index + 1 : index;
      return false;
    }
    ++scanned;
    auto e = entry_at(index);
    if (!e.ok()) {
      failure = e.status();
      return false;
    }
    if (matches(*e)) page.entries.push_back(std::move(e).value());
    return true;
  };

  // Use the most selective index the query names; filter the rest per entry.
  std::optional<Bytes> prefix;
  if (q.ref)
    prefix = records::index_prefix(records::kIndexRef, *q.ref);
  else if (q.flag)
    prefix = records::index_prefix(records::kIndexFlag, *q.flag);
  else if (q.issuer)
    prefix = records::index_prefix(records::kIndexIssuer, *q.issuer);
  else if (q.subject)
    prefix = records::index_prefix(records::kIndexSubject, *q.subject);
  else if (q.content_type)
    prefix = records::index_prefix(records::kIndexType, *q.content_type);

  if (prefix && !q.descending) {
    Bytes start = *prefix, stop = *prefix;
    append_be64(start, begin);
    append_be64(stop, end);
    CUSTOS_RETURN_IF_ERROR(store_->scan(Column::kIndex, start, stop, [&](ByteView key, ByteView) {
      return visit_index(read_be64(key.data() + key.size() - 8));
    }));
  } else if (prefix) {
    // From the last key below `end` down to the first below `begin` or
    // outside the prefix (other index kinds have other key lengths).
    const size_t key_bytes = prefix->size() + 8;
    Bytes start = *prefix;
    append_be64(start, end - 1);
    CUSTOS_RETURN_IF_ERROR(store_->scan_reverse(Column::kIndex, start, [&](ByteView key, ByteView) {
      if (key.size() != key_bytes || !std::equal(prefix->begin(), prefix->end(), key.begin()))
        return false;
      const uint64_t index = read_be64(key.data() + prefix->size());
      return index >= begin && visit_index(index);
    }));
  } else if (!q.descending) {
    for (uint64_t i = begin; i < end; ++i) {
      if (!visit_index(i)) break;
    }
  } else {
    for (uint64_t i = end; i > begin; --i) {
      if (!visit_index(i - 1)) break;
    }
  }
  CUSTOS_RETURN_IF_ERROR(failure);
  return page;
}

}  // namespace custos::ledger
