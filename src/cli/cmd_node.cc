// `custos node`: runs one node.
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <optional>
#include <thread>

#include "api/server.h"
#include "cli/common.h"
#include "cli/consortium.h"
#include "cli/signing.h"
#include "core/file.h"
#include "crypto/keys.h"
#include "domain/rules.h"
#include "domain/vault.h"
#include "ledger/genesis.h"
#include "node/node.h"

namespace custos::cli {

namespace {

struct NodeOptions {
  std::string data_dir = "custos-data";
  std::string listen = "127.0.0.1:8080";
  bool dev = false;
  std::string genesis_path;
  std::string node_key_path;
  std::string name = "node-0";
  int block_interval_ms = limits::kBlockIntervalMsDefault;
  uint64_t round_timeout_ms = 1000;
  uint64_t idle_proposal_ms = 500;
  std::string log_level = "info";
  std::string config_path;               // --config: a consortium member (cli/consortium.h)
  std::optional<uint32_t> config_index;  // the genesis position the config claims
};

Status write_key_pair(const std::string& dir, const std::string& name,
                      const crypto::PrivateKey& key) {
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(dir + "/" + name + ".key", key.to_pem(), 0600));
  return write_file_atomic(dir + "/" + name + ".pub", key.public_key().to_pem());
}

// --dev: a self-contained single-node consortium in the data directory —
// node key, admin key and a genesis naming both — made on first start only.
Status ensure_dev_layout(const NodeOptions& o) {
  if (file_exists(o.genesis_path)) return Status();
  const std::string keys = o.data_dir + "/keys";
  std::error_code ec;
  std::filesystem::create_directories(keys, ec);
  if (ec) return error(ErrorCode::kIo, "cannot create " + keys + ": " + ec.message());
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey node_key,
                          crypto::PrivateKey::generate(crypto::Algorithm::kEd25519));
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey admin_key,
                          crypto::PrivateKey::generate(crypto::Algorithm::kEd25519));
  CUSTOS_RETURN_IF_ERROR(write_key_pair(keys, "node", node_key));
  CUSTOS_RETURN_IF_ERROR(write_key_pair(keys, "admin", admin_key));
  std::string genesis =
      ledger::genesis_json("custos-dev", node::unix_time_ms(), {{"admin", admin_key.public_key()}},
                           {{o.name, node_key.public_key()}});
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(o.genesis_path, genesis));
  spdlog::info("--dev: created a new consortium in {} (admin key {}/admin.key)", o.data_dir, keys);
  return Status();
}

// --config: everything the consortium files say; flags given on the command
// line are not mixed in, so what runs is what the file says.
Result<std::optional<node::NetworkConfig>> apply_config(NodeOptions& o) {
  if (o.config_path.empty()) return std::optional<node::NetworkConfig>();
  CUSTOS_ASSIGN_OR_RETURN(NodeFileConfig c, read_node_config(o.config_path));
  o.name = c.name;
  o.config_index = c.index;
  o.data_dir = c.data_dir;
  o.genesis_path = c.genesis_path;
  o.node_key_path = c.key_path;
  o.listen = c.api_listen;
  node::NetworkConfig n;
  CUSTOS_ASSIGN_OR_RETURN(auto peer_listen, parse_host_port(c.peer_listen, "peer_listen"));
  n.listen_host = peer_listen.first;
  n.listen_port = peer_listen.second;
  n.peers = c.peers;
  CUSTOS_ASSIGN_OR_RETURN(Bytes key, read_file(c.key_path, kConfigBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(Bytes cert, read_file(c.certificate_path, kConfigBytesMax));
  n.key_pem.assign(key.begin(), key.end());
  n.certificate_pem.assign(cert.begin(), cert.end());
  o.round_timeout_ms = c.round_timeout_ms;
  o.idle_proposal_ms = c.idle_proposal_ms;
  return std::optional<node::NetworkConfig>(std::move(n));
}

Status run_node(NodeOptions o) {
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  if (o.dev && !o.config_path.empty()) {
    return error(ErrorCode::kInvalidArgument, "--dev and --config exclude each other");
  }
  CUSTOS_ASSIGN_OR_RETURN(std::optional<node::NetworkConfig> network, apply_config(o));
  if (o.genesis_path.empty()) o.genesis_path = o.data_dir + "/genesis.json";
  if (o.node_key_path.empty()) o.node_key_path = o.data_dir + "/keys/node.key";
  if (o.dev) CUSTOS_RETURN_IF_ERROR(ensure_dev_layout(o));
  CUSTOS_ASSIGN_OR_RETURN(auto listen, parse_host_port(o.listen, "--listen"));
  auto genesis_bytes = read_file(o.genesis_path, ledger::kGenesisBytesMax);
  if (!genesis_bytes.ok()) {
    return error(genesis_bytes.status().code(),
                 genesis_bytes.status().message() +
                     " (start with --dev to create a development consortium)");
  }
  CUSTOS_ASSIGN_OR_RETURN(ledger::Genesis genesis, ledger::parse_genesis(*genesis_bytes));
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey node_key, load_private_key(o.node_key_path));
  if (o.config_index) {
    const auto& nodes = genesis.nodes;
    if (*o.config_index >= nodes.size() ||
        nodes[*o.config_index].key.kid() != node_key.public_key().kid()) {
      return error(ErrorCode::kInvalidArgument,
                   "the config says this is node " + std::to_string(*o.config_index) +
                       " of the genesis, but " + o.node_key_path + " is not that node's key");
    }
  }

  // Signals are taken by one thread with sigwait, so no handler runs inside
  // RocksDB or the HTTP library.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  node::NodeConfig config;
  config.ledger = {o.data_dir,         o.name, std::move(node_key),
                   std::move(genesis), {},     domain::make_rules()};
  config.block_interval_ms = o.block_interval_ms;
  config.round_timeout_ms = o.round_timeout_ms;
  config.idle_proposal_ms = o.idle_proposal_ms;
  config.network = std::move(network);
  CUSTOS_ASSIGN_OR_RETURN(auto node, node::Node::start(std::move(config)));
  // Finishes record erasures a crash interrupted, then follows the ledger.
  domain::VaultSweeper vault_sweeper(node->ledger());
  api::Server server(*node);
  CUSTOS_RETURN_IF_ERROR(server.bind(listen.first, listen.second));
  ledger::Head head = node->ledger().head();
  spdlog::info(
      "custos node '{}' of consortium '{}' listening on http://{}:{} (log size {}, height {})",
      node->ledger().node_name(), node->ledger().genesis().consortium, listen.first, server.port(),
      head.log_size, head.height);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("signal {}: stopping", sig);
    server.stop();
  });
  server.serve();
  // serve() also returns if the listener fails; wake the waiter either way.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  spdlog::info("stopped cleanly at log size {}", node->ledger().head().log_size);
  return Status();
}

}  // namespace

void add_node_command(CLI::App& app) {
  auto o = std::make_shared<NodeOptions>();
  CLI::App* cmd = app.add_subcommand("node", "Run a custos node");
  cmd->add_option("--data-dir", o->data_dir, "Data directory (RocksDB, keys, genesis)")
      ->capture_default_str();
  cmd->add_option("--listen", o->listen, "HTTP address HOST:PORT")->capture_default_str();
  cmd->add_flag("--dev", o->dev, "Create a one-node development consortium on first start");
  cmd->add_option("--config", o->config_path,
                  "Run a consortium member from its config.json (written by `custos init`)");
  cmd->add_option("--genesis", o->genesis_path, "Genesis file (default DATA_DIR/genesis.json)");
  cmd->add_option("--node-key", o->node_key_path,
                  "Node private key PEM (default DATA_DIR/keys/node.key)");
  cmd->add_option("--name", o->name, "Node name (receipt issuer)")->capture_default_str();
  cmd->add_option("--block-interval-ms", o->block_interval_ms,
                  "Longest wait for more statements per block")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  cmd->add_option("--log-level", o->log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  cmd->callback([o] {
    Status s = run_node(*o);
    if (!s.ok()) exit_status() = fail(s);
  });
}

}  // namespace custos::cli
