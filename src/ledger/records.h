// Storage keys and small records of the ledger (see docs/formats.md,
// "Storage"). Shared by the ledger and the audit so both read one layout.
#pragma once

#include <string_view>

#include "core/bytes.h"
#include "merkle/merkle.h"
#include "storage/store.h"

namespace custos::ledger::records {

inline constexpr std::string_view kMetaGenesis = "genesis";
inline constexpr std::string_view kMetaHead = "head";  // be64(height of the newest block)

// Secondary index kinds (first byte of a kIndex key).
inline constexpr uint8_t kIndexIssuer = 'i';
inline constexpr uint8_t kIndexSubject = 's';
inline constexpr uint8_t kIndexType = 't';
inline constexpr uint8_t kIndexGap = 'g';   // be64(index) -> CBOR [expected, got]
inline constexpr uint8_t kIndexRef = 'r';   // what an entry concerns (rules.h)
inline constexpr uint8_t kIndexFlag = 'f';  // flag code (text before ':')
inline constexpr size_t kIndexValueHashBytes = 8;

inline Bytes be64_key(uint64_t v) {
  Bytes k;
  k.reserve(8);
  append_be64(k, v);
  return k;
}

inline Bytes node_key(uint32_t level, uint64_t index) {
  Bytes k;
  k.reserve(9);
  k.push_back(static_cast<uint8_t>(level));
  append_be64(k, index);
  return k;
}

// kind || first 8 bytes of SHA-256(value): fixed width keeps keys short; a
// rare collision only costs a wasted read, because queries compare the full
// value on the entry itself.
Bytes index_prefix(uint8_t kind, std::string_view value);
inline Bytes index_key(uint8_t kind, std::string_view value, uint64_t log_index) {
  Bytes k = index_prefix(kind, value);
  append_be64(k, log_index);
  return k;
}

inline Bytes key_record_key(const Hash256& kid) {
  Bytes k{'k'};
  k.insert(k.end(), kid.begin(), kid.end());
  return k;
}

// entry id -> where the entry is, and what the domain rules said of it:
// be64 index || be64 height || optional CBOR {"flags": [* tstr], "refs": [* tstr]}.
// The annotations ride in this record (read anyway to find an entry) rather
// than in one of their own: one record fewer per annotated entry.
struct EntryLocation {
  uint64_t index = 0;
  uint64_t height = 0;
  Bytes annotations;  // empty when the rules said nothing

  Bytes encode() const {
    Bytes out;
    out.reserve(16 + annotations.size());
    append_be64(out, index);
    append_be64(out, height);
    out.insert(out.end(), annotations.begin(), annotations.end());
    return out;
  }
  static Result<EntryLocation> decode(ByteView b) {
    if (b.size() < 16) return error(ErrorCode::kCorruption, "entry location record is too short");
    return EntryLocation{read_be64(b.data()), read_be64(b.data() + 8),
                         Bytes(b.begin() + 16, b.end())};
  }
};

// Reads perfect-subtree hashes from the log_nodes column. Level 0 (leaf
// hashes) is not stored: it is computed from the entry itself, which saves a
// record per entry; a proof needs at most a few leaves.
class StoreNodeReader : public merkle::NodeReader {
 public:
  explicit StoreNodeReader(const storage::Store& store) : store_(store) {}
  Result<merkle::Hash> perfect_subtree(uint32_t level, uint64_t index) override;

 private:
  const storage::Store& store_;
};

}  // namespace custos::ledger::records
