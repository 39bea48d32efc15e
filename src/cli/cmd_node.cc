// `custos node`: runs one node.
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <thread>

#include "api/server.h"
#include "cli/common.h"
#include "cli/signing.h"
#include "core/file.h"
#include "crypto/keys.h"
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
  std::string log_level = "info";
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

Result<std::pair<std::string, int>> parse_listen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    return error(ErrorCode::kInvalidArgument, "--listen must be HOST:PORT");
  int port = 0;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535) return error(ErrorCode::kInvalidArgument, "--listen: bad port");
  return std::make_pair(listen.substr(0, colon), port);
}

Status run_node(NodeOptions o) {
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  if (o.genesis_path.empty()) o.genesis_path = o.data_dir + "/genesis.json";
  if (o.node_key_path.empty()) o.node_key_path = o.data_dir + "/keys/node.key";
  if (o.dev) CUSTOS_RETURN_IF_ERROR(ensure_dev_layout(o));
  CUSTOS_ASSIGN_OR_RETURN(auto listen, parse_listen(o.listen));
  auto genesis_bytes = read_file(o.genesis_path, ledger::kGenesisBytesMax);
  if (!genesis_bytes.ok()) {
    return error(genesis_bytes.status().code(),
                 genesis_bytes.status().message() +
                     " (start with --dev to create a development consortium)");
  }
  CUSTOS_ASSIGN_OR_RETURN(ledger::Genesis genesis, ledger::parse_genesis(*genesis_bytes));
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey node_key, load_private_key(o.node_key_path));

  // Signals are taken by one thread with sigwait, so no handler runs inside
  // RocksDB or the HTTP library.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  node::NodeConfig config;
  config.ledger = {o.data_dir, o.name, std::move(node_key), std::move(genesis), {}};
  config.block_interval_ms = o.block_interval_ms;
  CUSTOS_ASSIGN_OR_RETURN(auto node, node::Node::start(std::move(config)));
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
