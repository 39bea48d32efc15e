#include "ledger/records.h"

#include "crypto/hash.h"

namespace custos::ledger::records {

Bytes index_prefix(uint8_t kind, std::string_view value) {
  Hash256 h = crypto::sha256(as_view(value));
  Bytes k;
  k.reserve(1 + kIndexValueHashBytes + 8);
  k.push_back(kind);
  k.insert(k.end(), h.begin(), h.begin() + kIndexValueHashBytes);
  return k;
}

Result<merkle::Hash> StoreNodeReader::perfect_subtree(uint32_t level, uint64_t index) {
  if (level == 0) {
    auto entry = store_.get(storage::Column::kEntries, be64_key(index));
    if (!entry.ok()) {
      if (entry.status().code() == ErrorCode::kNotFound) {
        return error(ErrorCode::kCorruption, "entry " + std::to_string(index) + " is missing");
      }
      return entry.status();
    }
    return merkle::leaf_hash(*entry);
  }
  auto value = store_.get(storage::Column::kNodes, node_key(level, index));
  if (!value.ok()) {
    if (value.status().code() == ErrorCode::kNotFound) {
      return error(ErrorCode::kCorruption, "log node (" + std::to_string(level) + ", " +
                                               std::to_string(index) + ") is missing");
    }
    return value.status();
  }
  if (value->size() != 32) return error(ErrorCode::kCorruption, "log node has the wrong size");
  merkle::Hash h;
  std::copy(value->begin(), value->end(), h.begin());
  return h;
}

}  // namespace custos::ledger::records
