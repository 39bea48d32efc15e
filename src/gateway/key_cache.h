// Device keys as the ledger knows them (GET /v1/keys/{kid}), cached with a
// bound on entries (least recently used evicted) and a time to live, so a
// revocation is seen within the TTL (the node refuses revoked keys anyway).
// Also remembers the highest sequence number seen per key, for the replay
// pre-filter. Each lane owns one (not thread-safe).
#pragma once

#include <atomic>
#include <list>
#include <optional>
#include <unordered_map>

#include "gateway/check.h"
#include "gateway/nodes.h"

namespace custos::gateway {

class KeyCache {
 public:
  struct Options {
    size_t entries_max = 0;
    int ttl_ms = 0;
  };
  KeyCache(Options options, NodeClient& client, Metrics& metrics);

  // The key, or nullopt when the ledger does not know it (cached briefly);
  // kUnavailable when no node answered (the caller retries later).
  Result<std::optional<KeyInfo>> get(const Hash256& kid);
  uint64_t last_seen(const Hash256& kid) const;
  void saw(const Hash256& kid, uint64_t sequence);
  size_t size() const { return size_.load(); }

 private:
  struct Entry {
    std::optional<KeyInfo> key;
    int64_t expires_ms = 0;
    uint64_t last_seen = 0;
    std::list<Hash256>::iterator lru;
  };
  Result<std::optional<KeyInfo>> fetch(const Hash256& kid);
  void insert(const Hash256& kid, std::optional<KeyInfo> key, int ttl_ms);

  Options options_;
  NodeClient& client_;
  Metrics& metrics_;
  std::unordered_map<Hash256, Entry, Hash256Hash> entries_;
  std::list<Hash256> lru_;  // front = most recently used
  std::atomic<size_t> size_{0};
};

// Parses a GET /v1/keys/{kid} answer (JSON).
Result<KeyInfo> parse_key_json(std::string_view body, const Hash256& kid);

}  // namespace custos::gateway
