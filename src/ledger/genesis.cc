#include "ledger/genesis.h"

#include <nlohmann/json.hpp>
#include <set>

#include "crypto/hash.h"

namespace custos::ledger {

const NamedKey* Genesis::find_node(const Hash256& kid) const {
  for (const auto& n : nodes) {
    if (n.key.kid() == kid) return &n;
  }
  return nullptr;
}

namespace {
Result<std::vector<NamedKey>> parse_keys(const nlohmann::json& doc, const char* field) {
  auto it = doc.find(field);
  if (it == doc.end() || !it->is_array() || it->empty()) {
    return error(ErrorCode::kInvalidArgument,
                 std::string("genesis: '") + field + "' must be a non-empty array");
  }
  if (it->size() > kGenesisKeysMax) {
    return error(ErrorCode::kTooLarge, std::string("genesis: too many entries in '") + field + "'");
  }
  std::vector<NamedKey> out;
  for (const auto& item : *it) {
    if (!item.is_object() || !item.contains("name") || !item["name"].is_string() ||
        !item.contains("public_key_pem") || !item["public_key_pem"].is_string()) {
      return error(ErrorCode::kInvalidArgument, std::string("genesis: each of '") + field +
                                                    "' needs string 'name' and 'public_key_pem'");
    }
    auto key = crypto::PublicKey::from_pem(item["public_key_pem"].get<std::string>());
    if (!key.ok()) {
      return error(ErrorCode::kInvalidArgument, std::string("genesis: ") + field + " '" +
                                                    item["name"].get<std::string>() +
                                                    "': " + key.status().message());
    }
    out.push_back({item["name"].get<std::string>(), std::move(key).value()});
  }
  return out;
}
}  // namespace

Result<Genesis> parse_genesis(ByteView json_bytes) {
  if (json_bytes.size() > kGenesisBytesMax)
    return error(ErrorCode::kTooLarge, "genesis file too large");
  nlohmann::json doc = nlohmann::json::parse(json_bytes.begin(), json_bytes.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return error(ErrorCode::kMalformed, "genesis: not a JSON object");
  Genesis g;
  if (!doc.contains("consortium") || !doc["consortium"].is_string() ||
      doc["consortium"].get<std::string>().empty()) {
    return error(ErrorCode::kInvalidArgument, "genesis: 'consortium' must be a non-empty string");
  }
  g.consortium = doc["consortium"].get<std::string>();
  if (doc.contains("created_ms") && doc["created_ms"].is_number_unsigned())
    g.created_ms = doc["created_ms"].get<uint64_t>();
  CUSTOS_ASSIGN_OR_RETURN(g.admins, parse_keys(doc, "admins"));
  CUSTOS_ASSIGN_OR_RETURN(g.nodes, parse_keys(doc, "nodes"));
  std::set<Hash256> kids;
  for (const auto* list : {&g.admins, &g.nodes}) {
    for (const auto& k : *list) {
      if (!kids.insert(k.key.kid()).second) {
        return error(ErrorCode::kInvalidArgument, "genesis: key '" + k.name + "' appears twice");
      }
    }
  }
  g.json_bytes.assign(json_bytes.begin(), json_bytes.end());
  g.hash = crypto::sha256(json_bytes);
  return g;
}

std::string genesis_json(const std::string& consortium, uint64_t created_ms,
                         const std::vector<NamedKey>& admins, const std::vector<NamedKey>& nodes) {
  nlohmann::ordered_json doc;
  doc["version"] = 1;
  doc["consortium"] = consortium;
  doc["created_ms"] = created_ms;
  auto list = [](const std::vector<NamedKey>& keys) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& k : keys) {
      arr.push_back({{"name", k.name},
                     {"kid", to_hex(k.key.kid())},
                     {"alg", crypto::algorithm_name(k.key.algorithm())},
                     {"public_key_pem", k.key.to_pem()}});
    }
    return arr;
  };
  doc["admins"] = list(admins);
  doc["nodes"] = list(nodes);
  return doc.dump(2) + "\n";
}

}  // namespace custos::ledger
