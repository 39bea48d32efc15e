// The files of a consortium on disk, as `custos init` writes them and
// `custos node --config` reads them (docs/operations.md):
//
//   DIR/genesis.json           the genesis (admins and node keys); identical everywhere
//   DIR/admin/admin.key, .pub  the first administrator key (keep offline)
//   DIR/node-<i>/node.key      node i's Ed25519 key (never leaves its machine)
//   DIR/node-<i>/node.pub
//   DIR/node-<i>/node.crt      self-signed certificate of that key (mutual TLS)
//   DIR/node-<i>/config.json   node i's configuration; relative paths in it
//                              are relative to its own folder
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "node/node.h"

namespace custos::cli {

inline constexpr size_t kConsortiumNodesMax = 64;  // nodes `custos init` writes
inline constexpr size_t kConfigBytesMax = 1 << 20;

struct InitOptions {
  std::string dir = "consortium";
  std::string consortium = "custos-local";
  size_t nodes = 4;
  std::vector<std::string> hosts;  // one per node; default 127.0.0.1 for all
  int api_base_port = 8080;        // node i serves HTTP on api_base_port + i
  int peer_base_port = 9080;       // and talks to peers on peer_base_port + i
};

Status init_consortium(const InitOptions& options);

// A node's configuration file, resolved.
struct NodeFileConfig {
  std::string name;
  uint32_t index = 0;
  std::string data_dir;
  std::string genesis_path;
  std::string key_path;
  std::string certificate_path;
  std::string api_listen;   // HOST:PORT
  std::string peer_listen;  // HOST:PORT
  std::vector<node::PeerAddress> peers;
  uint64_t round_timeout_ms = 1000;
  uint64_t idle_proposal_ms = 500;
};

Result<NodeFileConfig> read_node_config(const std::string& path);

// "HOST:PORT" -> (host, port); kInvalidArgument naming `what` otherwise.
Result<std::pair<std::string, uint16_t>> parse_host_port(const std::string& text,
                                                         const std::string& what);

}  // namespace custos::cli
