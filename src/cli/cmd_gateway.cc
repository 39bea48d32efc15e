// `custos gateway` (devices' statements from MQTT to the nodes) and
// `custos broker init|issue|run` (the Mosquitto broker it reads from).
// docs/gateway.md describes both.
#include <mosquitto.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <thread>

#include "cli/common.h"
#include "gateway/broker_config.h"
#include "gateway/gateway.h"

namespace custos::cli {

namespace {

struct GatewayCliOptions {
  gateway::GatewayOptions g;
  std::string broker_dir;
  bool json = false;
  int status_interval_ms = 1000;
  std::string log_level = "info";
};

Status resolve_broker(GatewayCliOptions& o) {
  gateway::BrokerOptions& b = o.g.broker;
  if (!o.broker_dir.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(gateway::BrokerEndpoint ep, gateway::read_broker_json(o.broker_dir));
    if (b.host.empty()) b.host = ep.host;
    if (b.port == 0) b.port = ep.port;
    if (b.ca_file.empty()) b.ca_file = o.broker_dir + "/ca.crt";
    if (b.cert_file.empty()) b.cert_file = o.broker_dir + "/gateway.crt";
    if (b.key_file.empty()) b.key_file = o.broker_dir + "/gateway.key";
  }
  if (b.host.empty()) b.host = "127.0.0.1";
  if (b.port == 0) b.port = gateway::kBrokerPortDefault;
  if (b.ca_file.empty() || b.cert_file.empty() || b.key_file.empty()) {
    return error(ErrorCode::kInvalidArgument,
                 "give --broker-dir, or --ca, --cert and --key for the broker's TLS");
  }
  if (o.g.nodes.empty()) o.g.nodes.push_back(kDefaultNodeUrl);
  return Status();
}

Status run_gateway(GatewayCliOptions o) {
  // Logs on stderr: stdout carries only the --json status lines.
  spdlog::set_default_logger(spdlog::stderr_color_mt("gateway"));
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  CUSTOS_RETURN_IF_ERROR(resolve_broker(o));
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  mosquitto_lib_init();
  CUSTOS_ASSIGN_OR_RETURN(auto gw, gateway::Gateway::create(o.g));
  spdlog::info("custos gateway: broker {}:{}, {} node(s), spool {}", o.g.broker.host,
               o.g.broker.port, o.g.nodes.size(), o.g.spool_dir);
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (!done) spdlog::info("signal {}: stopping", sig);
    gw->stop();
  });
  std::thread reporter;
  if (o.json) {
    reporter = std::thread([&] {
      while (!done) {
        std::printf("%s\n", gw->status_json().c_str());
        std::fflush(stdout);
        for (int waited = 0; waited < o.status_interval_ms && !done; waited += 50) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
    });
  }
  Status s = gw->run();
  done = true;
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  if (reporter.joinable()) reporter.join();
  if (o.json) std::printf("%s\n", gw->status_json().c_str());
  gw.reset();
  mosquitto_lib_cleanup();
  return s;
}

void add_gateway_command(CLI::App& app) {
  auto o = std::make_shared<GatewayCliOptions>();
  o->g.broker.host.clear();
  o->g.broker.port = 0;
  o->g.spool_dir = "custos-gateway-spool";
  o->g.metrics_listen = "127.0.0.1:9108";
  CLI::App* cmd = app.add_subcommand(
      "gateway", "Take devices' signed statements from an MQTT broker to the nodes");
  cmd->add_option("--broker-dir", o->broker_dir,
                  "Folder made by `custos broker init` (host, port, CA and gateway certificate)");
  cmd->add_option("--broker-host", o->g.broker.host, "Broker host (default from --broker-dir)");
  cmd->add_option("--broker-port", o->g.broker.port, "Broker TLS port");
  cmd->add_option("--ca", o->g.broker.ca_file, "CA certificate of the broker (PEM)");
  cmd->add_option("--cert", o->g.broker.cert_file, "Gateway client certificate (PEM)");
  cmd->add_option("--key", o->g.broker.key_file, "Gateway client key (PEM)");
  cmd->add_option("--client-id", o->g.broker.client_id, "MQTT client id (its session persists)")
      ->capture_default_str();
  cmd->add_option("--node", o->g.nodes,
                  "Node URL; repeat for failover (default " + std::string(kDefaultNodeUrl) + ")");
  cmd->add_option("--spool-dir", o->g.spool_dir, "Durable spool (RocksDB)")->capture_default_str();
  cmd->add_option("--spool-max-messages", o->g.spool_messages_max,
                  "Spool limit in messages (ingest pauses at 90%)")
      ->capture_default_str();
  cmd->add_option("--spool-max-bytes", o->g.spool_bytes_max, "Spool limit in bytes")
      ->capture_default_str();
  cmd->add_option("--batch-max", o->g.batch_statements_max, "Statements per batch")
      ->capture_default_str();
  cmd->add_option("--batch-bytes", o->g.batch_bytes_max, "Bytes per batch")->capture_default_str();
  cmd->add_option("--batch-wait-ms", o->g.batch_wait_ms, "Longest wait to fill a batch")
      ->capture_default_str();
  cmd->add_option("--lanes", o->g.lanes, "Batches in flight (a device always uses one lane)")
      ->capture_default_str();
  cmd->add_option("--key-cache", o->g.key_cache_entries, "Device keys cached")
      ->capture_default_str();
  cmd->add_option("--key-ttl-ms", o->g.key_cache_ttl_ms, "How long a cached key is trusted")
      ->capture_default_str();
  cmd->add_option("--metrics-listen", o->g.metrics_listen,
                  "HOST:PORT for GET /metrics and /status ('' = none, port 0 = any)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print a JSON status line on stdout every --status-interval-ms");
  cmd->add_option("--status-interval-ms", o->status_interval_ms, "Status line interval")
      ->capture_default_str();
  cmd->add_option("--log-level", o->log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  cmd->callback([o] {
    if (Status s = run_gateway(*o); !s.ok()) exit_status() = fail(s);
  });
}

void add_broker_commands(CLI::App& app) {
  CLI::App* broker = app.add_subcommand("broker", "The MQTT broker devices publish to (Mosquitto)");
  broker->require_subcommand(1);

  auto init = std::make_shared<gateway::BrokerInitOptions>();
  CLI::App* i = broker->add_subcommand(
      "init", "Write a CA, broker and gateway certificates, ACLs and mosquitto.conf");
  i->add_option("--dir", init->dir, "Folder to create")->required();
  i->add_option("--listen", init->listen_host, "Address the broker listens on")
      ->capture_default_str();
  i->add_option("--port", init->port, "TLS port")->capture_default_str();
  i->add_option("--host", init->hosts, "Name or address in the broker certificate (repeat)");
  i->callback([init] {
    Status s = gateway::broker_init(*init);
    if (!s.ok()) {
      exit_status() = fail(s);
      return;
    }
    std::printf("broker configuration in %s: run `custos broker run --dir %s`\n", init->dir.c_str(),
                init->dir.c_str());
  });

  auto issue = std::make_shared<std::array<std::string, 3>>();
  CLI::App* is = broker->add_subcommand(
      "issue", "Issue a device's TLS client certificate (CN = device id) from the broker CA");
  is->add_option("--dir", (*issue)[0], "Folder made by `custos broker init`")->required();
  is->add_option("--device", (*issue)[1], "Device id (its topic segment and user name)")
      ->required();
  is->add_option("--out", (*issue)[2], "Writes OUT.key and OUT.crt")->required();
  is->callback([issue] {
    Status s = gateway::broker_issue((*issue)[0], (*issue)[1], (*issue)[2]);
    if (!s.ok()) {
      exit_status() = fail(s);
      return;
    }
    std::printf("%s.crt and %s.key for device %s\n", (*issue)[2].c_str(), (*issue)[2].c_str(),
                (*issue)[1].c_str());
  });

  auto run_dir = std::make_shared<std::string>();
  CLI::App* r = broker->add_subcommand(
      "run", "Run mosquitto in the foreground with the folder's configuration");
  r->add_option("--dir", *run_dir, "Folder made by `custos broker init`")->required();
  r->callback([run_dir] {
    const std::string conf = *run_dir + "/mosquitto.conf";
    if (::access(conf.c_str(), R_OK) != 0) {
      exit_status() = fail(error(ErrorCode::kInvalidArgument, conf + " not found (broker init?)"));
      return;
    }
    std::fflush(stdout);
    for (const char* bin : {"mosquitto", "/usr/sbin/mosquitto"}) {
      ::execlp(bin, bin, "-c", conf.c_str(), static_cast<char*>(nullptr));
    }
    exit_status() = fail(error(ErrorCode::kIo, "cannot run mosquitto (apt-get install mosquitto)"));
  });
}

}  // namespace

void add_gateway_commands(CLI::App& app) {
  add_gateway_command(app);
  add_broker_commands(app);
}

}  // namespace custos::cli
