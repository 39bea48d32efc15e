#include "node/consensus_store.h"

#include <algorithm>

#include "codec/cbor.h"
#include "ledger/records.h"

namespace custos::node {

using storage::Column;

namespace {
constexpr std::string_view kSafetyKey = "s";

Bytes block_key(const Hash256& id) {
  Bytes k{'b'};
  k.insert(k.end(), id.begin(), id.end());
  return k;
}

Bytes round_key(uint64_t round, const Hash256& id) {
  Bytes k{'r'};
  append_be64(k, round);
  k.insert(k.end(), id.begin(), id.end());
  return k;
}
}  // namespace

std::optional<consensus::Block> ConsensusStore::get(const Hash256& id) const {
  if (id == genesis_id_) return genesis_;
  auto bytes = store_.get(Column::kConsensus, block_key(id));
  if (!bytes.ok()) return std::nullopt;
  // A block is an array of 8 (its first byte 0x88), a compact record an
  // array of 2 (0x82).
  auto block = !bytes->empty() && (*bytes)[0] == 0x80 + kCompactBlockFields
                   ? expand(*bytes)
                   : consensus::decode_block(*bytes);
  // A block that does not hash to its key is not the block asked for.
  if (!block.ok() || block->id() != id) return std::nullopt;
  return std::move(block).value();
}

Status ConsensusStore::persist(const std::optional<consensus::SafetyState>& safety,
                               const std::vector<consensus::Block>& blocks, bool sync) {
  storage::WriteBatch wb;
  if (safety) wb.put(Column::kConsensus, as_view(kSafetyKey), safety->encode());
  std::vector<Hash256> ids;
  for (const consensus::Block& b : blocks) {
    const Hash256 id = b.id();
    wb.put(Column::kConsensus, block_key(id), consensus::encode_block(b));
    wb.put(Column::kConsensus, round_key(b.round, id), {});
    ids.push_back(id);
  }
  if (wb.count() == 0) return Status();
  CUSTOS_RETURN_IF_ERROR(store_.write(wb, sync));
  if (persisted_.size() + ids.size() > kPersistedIdsMax) persisted_.clear();
  persisted_.insert(ids.begin(), ids.end());
  return Status();
}

Status ConsensusStore::keep_committed(const consensus::Block& block, const Hash256& id) {
  if (persisted_.erase(id) > 0) return Status();  // written by persist()
  if (id == genesis_id_ || store_.get(Column::kConsensus, block_key(id)).ok()) return Status();
  storage::WriteBatch wb;
  wb.put(Column::kConsensus, block_key(id), consensus::encode_block(block));
  return store_.write(wb, /*sync=*/false);
}

Status ConsensusStore::compact_executed(const consensus::Block& block, const Hash256& id,
                                        const std::vector<std::optional<uint64_t>>& entry_index) {
  if (id == genesis_id_ || entry_index.size() != block.payload.size()) return Status();
  if (std::none_of(entry_index.begin(), entry_index.end(),
                   [](const auto& i) { return i.has_value(); })) {
    return Status();  // nothing registered: the block stays as it is
  }
  consensus::Block header = block;
  header.payload.clear();
  cbor::Array items;
  items.reserve(entry_index.size());
  for (size_t i = 0; i < entry_index.size(); ++i) {
    items.push_back(entry_index[i] ? cbor::Value::uint(*entry_index[i])
                                   : cbor::Value::bytes(ByteView(block.payload[i])));
  }
  cbor::Array record;
  record.push_back(cbor::Value::bytes(consensus::encode_block(header)));
  record.push_back(cbor::Value::array(std::move(items)));
  storage::WriteBatch wb;
  wb.put(Column::kConsensus, block_key(id), cbor::encode(cbor::Value::array(std::move(record))));
  return store_.write(wb, /*sync=*/false);
}

Result<consensus::Block> ConsensusStore::expand(ByteView compact) const {
  cbor::DecodeOptions options;
  options.max_items = consensus::kBlockItemsMax + 4;  // the record, header bstr, item list
  options.max_depth = 3;
  CUSTOS_ASSIGN_OR_RETURN(cbor::Value v, cbor::decode(compact, options));
  if (!v.is(cbor::Type::kArray) || v.as_array().size() != kCompactBlockFields ||
      !v.as_array()[0].is(cbor::Type::kBytes) || !v.as_array()[1].is(cbor::Type::kArray)) {
    return error(ErrorCode::kCorruption, "unreadable compact consensus block");
  }
  CUSTOS_ASSIGN_OR_RETURN(consensus::Block b, consensus::decode_block(v.as_array()[0].as_bytes()));
  const cbor::Array& items = v.as_array()[1].as_array();
  if (!b.payload.empty() || items.size() > consensus::kBlockItemsMax) {
    return error(ErrorCode::kCorruption, "unreadable compact consensus block");
  }
  b.payload.reserve(items.size());
  for (const cbor::Value& item : items) {
    if (item.is(cbor::Type::kBytes)) {
      b.payload.push_back(item.as_bytes());
    } else if (item.is(cbor::Type::kUnsigned)) {
      CUSTOS_ASSIGN_OR_RETURN(
          Bytes entry, store_.get(Column::kEntries, ledger::records::be64_key(item.as_uint())));
      b.payload.push_back(std::move(entry));
    } else {
      return error(ErrorCode::kCorruption, "unreadable compact consensus block item");
    }
  }
  return b;
}

Result<consensus::Recovered> ConsensusStore::recover(
    const std::optional<Hash256>& executed_id) const {
  consensus::Recovered r = consensus::initial_recovered(genesis_);
  auto safety = store_.get(Column::kConsensus, as_view(kSafetyKey));
  if (safety.ok()) {
    CUSTOS_ASSIGN_OR_RETURN(r.safety, consensus::SafetyState::decode(*safety));
  } else if (safety.status().code() != ErrorCode::kNotFound) {
    return safety.status();
  }
  if (executed_id) {
    auto committed = get(*executed_id);
    if (!committed) {
      return error(ErrorCode::kCorruption, "the ledger executed consensus block " +
                                               to_hex(*executed_id) + " but it is not stored");
    }
    r.committed = std::move(*committed);
  }
  Bytes start{'r'};
  append_be64(start, r.committed.round + 1);
  CUSTOS_RETURN_IF_ERROR(
      store_.scan(Column::kConsensus, start, Bytes{'s'}, [&](ByteView key, ByteView) {
        if (key.size() != 41) return true;
        Hash256 id;
        std::copy(key.begin() + 9, key.end(), id.begin());
        if (auto b = get(id)) r.pending.push_back(std::move(*b));
        // Bounded like the replica's own tree: more is never useful.
        return r.pending.size() < consensus::kPendingBlocksMax;
      }));
  return r;
}

}  // namespace custos::node
