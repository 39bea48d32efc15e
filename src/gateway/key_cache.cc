#include "gateway/key_cache.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "gateway/limits.h"

namespace custos::gateway {

KeyCache::KeyCache(Options options, NodeClient& client, Metrics& metrics)
    : options_(options), client_(client), metrics_(metrics) {}

Result<KeyInfo> parse_key_json(std::string_view body, const Hash256& kid) {
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (!doc.is_object() || !doc["public_key_pem"].is_string() || !doc["name"].is_string() ||
      !doc["status"].is_string()) {
    return error(ErrorCode::kMalformed, "key answer is not the documented JSON");
  }
  auto key = crypto::PublicKey::from_pem(doc["public_key_pem"].get<std::string>());
  if (!key.ok()) return key.status();
  if (key->kid() != kid) return error(ErrorCode::kMalformed, "node answered another key");
  KeyInfo info{*key, doc["name"].get<std::string>(), doc["status"] == "revoked", 0};
  if (doc["last_sequence"].is_number_unsigned()) {
    info.last_sequence = doc["last_sequence"].get<uint64_t>();
  }
  return info;
}

Result<std::optional<KeyInfo>> KeyCache::fetch(const Hash256& kid) {
  metrics_.key_fetches++;
  CUSTOS_ASSIGN_OR_RETURN(NodeReply reply, client_.get("/v1/keys/" + to_hex(kid)));
  if (reply.status == 404) return std::optional<KeyInfo>();
  if (reply.status != 200) {
    return error(ErrorCode::kUnavailable,
                 "key lookup: HTTP " + std::to_string(reply.status) + " from " + reply.node);
  }
  auto info = parse_key_json(reply.body, kid);
  if (!info.ok()) return error(ErrorCode::kUnavailable, "key lookup: " + info.status().message());
  return std::optional<KeyInfo>(std::move(*info));
}

void KeyCache::insert(const Hash256& kid, std::optional<KeyInfo> key, int ttl_ms) {
  auto it = entries_.find(kid);
  if (it == entries_.end()) {
    while (!lru_.empty() && entries_.size() >= options_.entries_max) {
      entries_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(kid);
    it = entries_.emplace(kid, Entry{}).first;
    it->second.lru = lru_.begin();
  }
  Entry& e = it->second;
  if (key) e.last_seen = std::max(e.last_seen, key->last_sequence);
  e.key = std::move(key);
  e.expires_ms = now_ms_steady() + ttl_ms;
  size_ = entries_.size();
}

Result<std::optional<KeyInfo>> KeyCache::get(const Hash256& kid) {
  auto it = entries_.find(kid);
  if (it != entries_.end() && it->second.expires_ms > now_ms_steady()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second.key;
  }
  CUSTOS_ASSIGN_OR_RETURN(std::optional<KeyInfo> key, fetch(kid));
  insert(kid, key, key ? options_.ttl_ms : limits::kUnknownKeyTtlMs);
  return key;
}

uint64_t KeyCache::last_seen(const Hash256& kid) const {
  auto it = entries_.find(kid);
  return it == entries_.end() ? 0 : it->second.last_seen;
}

void KeyCache::saw(const Hash256& kid, uint64_t sequence) {
  auto it = entries_.find(kid);
  if (it != entries_.end()) it->second.last_seen = std::max(it->second.last_seen, sequence);
}

}  // namespace custos::gateway
