#include "cli/consortium.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "crypto/keys.h"
#include "ledger/genesis.h"
#include "net/certificate.h"

namespace custos::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
// Node certificates pin keys, so their dates are not what keeps them valid
// (net/certificate.h); a long validity keeps TLS libraries content.
constexpr int kCertificateValidDays = 3650;

Status write_key_pair(const std::string& dir, const std::string& name,
                      const crypto::PrivateKey& key) {
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(dir + "/" + name + ".key", key.to_pem(), 0600));
  return write_file_atomic(dir + "/" + name + ".pub", key.public_key().to_pem());
}

Status make_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return error(ErrorCode::kIo, "cannot create " + dir + ": " + ec.message());
  return Status();
}

std::string node_name(size_t i) {
  return "node-" + std::to_string(i);
}

json node_config_json(const InitOptions& o, size_t i) {
  const auto host = [&](size_t k) {
    return o.hosts.empty() ? std::string("127.0.0.1") : o.hosts[k];
  };
  json peers = json::array();
  for (size_t k = 0; k < o.nodes; ++k) {
    if (k == i) continue;
    peers.push_back({{"index", k},
                     {"name", node_name(k)},
                     {"address", host(k) + ":" + std::to_string(o.peer_base_port + k)}});
  }
  // A node on its own machine listens on every interface; on loopback only.
  const std::string bind = o.hosts.empty() ? "127.0.0.1" : "0.0.0.0";
  return {{"name", node_name(i)},
          {"index", i},
          {"data_dir", "data"},
          {"genesis", "../genesis.json"},
          {"key", "node.key"},
          {"certificate", "node.crt"},
          {"api_listen", bind + ":" + std::to_string(o.api_base_port + i)},
          {"peer_listen", bind + ":" + std::to_string(o.peer_base_port + i)},
          {"peers", peers},
          {"round_timeout_ms", 1000},
          {"idle_proposal_ms", 500}};
}

Status check_init_options(const InitOptions& o) {
  if (o.nodes < 1 || o.nodes > kConsortiumNodesMax) {
    return error(ErrorCode::kInvalidArgument,
                 "--nodes must be 1.." + std::to_string(kConsortiumNodesMax));
  }
  if (!o.hosts.empty() && o.hosts.size() != o.nodes) {
    return error(ErrorCode::kInvalidArgument, "--hosts must name one host per node");
  }
  const auto port_ok = [&](int base) { return base > 0 && base + o.nodes <= 65535; };
  if (!port_ok(o.api_base_port) || !port_ok(o.peer_base_port)) {
    return error(ErrorCode::kInvalidArgument, "port bases leave no room for every node");
  }
  if (file_exists(o.dir + "/genesis.json")) {
    return error(ErrorCode::kConflict, o.dir + " already holds a consortium (genesis.json)");
  }
  return Status();
}
}  // namespace

Status init_consortium(const InitOptions& o) {
  CUSTOS_RETURN_IF_ERROR(check_init_options(o));
  CUSTOS_RETURN_IF_ERROR(make_dir(o.dir + "/admin"));
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey admin,
                          crypto::PrivateKey::generate(crypto::Algorithm::kEd25519));
  CUSTOS_RETURN_IF_ERROR(write_key_pair(o.dir + "/admin", "admin", admin));
  std::vector<ledger::NamedKey> node_keys;
  for (size_t i = 0; i < o.nodes; ++i) {
    const std::string dir = o.dir + "/" + node_name(i);
    CUSTOS_RETURN_IF_ERROR(make_dir(dir));
    CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey key,
                            crypto::PrivateKey::generate(crypto::Algorithm::kEd25519));
    CUSTOS_RETURN_IF_ERROR(write_key_pair(dir, "node", key));
    CUSTOS_ASSIGN_OR_RETURN(std::string cert, net::self_signed_certificate_pem(
                                                  key, node_name(i), kCertificateValidDays));
    CUSTOS_RETURN_IF_ERROR(write_file_atomic(dir + "/node.crt", cert));
    CUSTOS_RETURN_IF_ERROR(
        write_file_atomic(dir + "/config.json", node_config_json(o, i).dump(2) + "\n"));
    node_keys.push_back({node_name(i), key.public_key()});
  }
  const auto now_ms = node::unix_time_ms();
  std::string genesis =
      ledger::genesis_json(o.consortium, now_ms, {{"admin", admin.public_key()}}, node_keys);
  // Written last: its presence marks a complete consortium directory.
  return write_file_atomic(o.dir + "/genesis.json", genesis);
}

Result<std::pair<std::string, uint16_t>> parse_host_port(const std::string& text,
                                                         const std::string& what) {
  const auto colon = text.rfind(':');
  const auto bad = [&] {
    return error(ErrorCode::kInvalidArgument, what + " must be HOST:PORT, not '" + text + "'");
  };
  if (colon == std::string::npos || colon == 0) return bad();
  const std::string port_text = text.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string::npos) {
    return bad();
  }
  const int port = std::stoi(port_text);
  if (port > 65535) return bad();
  return std::make_pair(text.substr(0, colon), static_cast<uint16_t>(port));
}

namespace {
Result<std::string> text_field(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty()) {
    return error(ErrorCode::kInvalidArgument,
                 std::string("node config: '") + key + "' must be a non-empty string");
  }
  return j[key].get<std::string>();
}

Result<uint64_t> uint_field(const json& j, const char* key, uint64_t fallback) {
  if (!j.contains(key)) return fallback;
  if (!j[key].is_number_unsigned()) {
    return error(ErrorCode::kInvalidArgument,
                 std::string("node config: '") + key + "' must be a non-negative integer");
  }
  return j[key].get<uint64_t>();
}

std::string resolve(const fs::path& base, const std::string& p) {
  const fs::path path(p);
  return path.is_absolute() ? p : (base / path).lexically_normal().string();
}

Result<std::vector<node::PeerAddress>> peers_field(const json& j) {
  if (!j.contains("peers") || !j["peers"].is_array() || j["peers"].size() > kConsortiumNodesMax) {
    return error(ErrorCode::kInvalidArgument, "node config: 'peers' must be an array");
  }
  std::vector<node::PeerAddress> peers;
  for (const json& p : j["peers"]) {
    if (!p.is_object()) return error(ErrorCode::kInvalidArgument, "node config: bad peer entry");
    CUSTOS_ASSIGN_OR_RETURN(uint64_t index, uint_field(p, "index", UINT64_MAX));
    if (index >= kConsortiumNodesMax) {
      return error(ErrorCode::kInvalidArgument, "node config: a peer needs an 'index'");
    }
    CUSTOS_ASSIGN_OR_RETURN(std::string address, text_field(p, "address"));
    CUSTOS_ASSIGN_OR_RETURN(auto hp, parse_host_port(address, "peer address"));
    peers.push_back({static_cast<uint32_t>(index), hp.first, hp.second});
  }
  return peers;
}
}  // namespace

Result<NodeFileConfig> read_node_config(const std::string& path) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes bytes, read_file(path, kConfigBytesMax));
  json j = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return error(ErrorCode::kMalformed, path + " is not a JSON object");
  }
  const fs::path base = fs::path(path).parent_path();
  NodeFileConfig c;
  CUSTOS_ASSIGN_OR_RETURN(c.name, text_field(j, "name"));
  CUSTOS_ASSIGN_OR_RETURN(uint64_t index, uint_field(j, "index", UINT64_MAX));
  if (index >= kConsortiumNodesMax) {
    return error(ErrorCode::kInvalidArgument, "node config: 'index' is missing or too large");
  }
  c.index = static_cast<uint32_t>(index);
  CUSTOS_ASSIGN_OR_RETURN(std::string data_dir, text_field(j, "data_dir"));
  CUSTOS_ASSIGN_OR_RETURN(std::string genesis, text_field(j, "genesis"));
  CUSTOS_ASSIGN_OR_RETURN(std::string key, text_field(j, "key"));
  CUSTOS_ASSIGN_OR_RETURN(std::string certificate, text_field(j, "certificate"));
  c.data_dir = resolve(base, data_dir);
  c.genesis_path = resolve(base, genesis);
  c.key_path = resolve(base, key);
  c.certificate_path = resolve(base, certificate);
  CUSTOS_ASSIGN_OR_RETURN(c.api_listen, text_field(j, "api_listen"));
  CUSTOS_ASSIGN_OR_RETURN(c.peer_listen, text_field(j, "peer_listen"));
  CUSTOS_ASSIGN_OR_RETURN(c.peers, peers_field(j));
  CUSTOS_ASSIGN_OR_RETURN(c.round_timeout_ms, uint_field(j, "round_timeout_ms", 1000));
  CUSTOS_ASSIGN_OR_RETURN(c.idle_proposal_ms, uint_field(j, "idle_proposal_ms", 500));
  if (c.round_timeout_ms < 10 || c.round_timeout_ms > 600000) {
    return error(ErrorCode::kInvalidArgument, "node config: round_timeout_ms must be 10..600000");
  }
  return c;
}

}  // namespace custos::cli
