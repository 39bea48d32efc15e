// Shared pieces of the `custos` subcommands: the HTTP client, output and
// exit codes.
#pragma once

#include <memory>
#include <string>

#include "core/bytes.h"
#include "core/status.h"

namespace CLI {
class App;
}

namespace custos::cli {

// Exit codes (docs/operations.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;  // verification failed, statement refused
inline constexpr int kExitUsage = 2;    // bad arguments or input files
inline constexpr int kExitIo = 3;       // node unreachable, I/O error

inline constexpr const char* kDefaultNodeUrl = "http://127.0.0.1:8080";

struct HttpReply {
  int status = 0;
  std::string content_type;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
};

// A small blocking client for one node. Errors reaching the node are kIo.
class NodeClient {
 public:
  explicit NodeClient(const std::string& url);
  ~NodeClient();
  Result<HttpReply> get(const std::string& path, const std::string& accept = "application/json");
  Result<HttpReply> post(const std::string& path, const std::string& body,
                         const std::string& content_type);
  const std::string& url() const { return url_; }

 private:
  struct Impl;
  std::string url_;
  std::unique_ptr<Impl> impl_;
};

// Turns a non-2xx reply into a Status carrying the problem detail.
Status reply_error(const HttpReply& reply);
// Prints "error: ..." to stderr and returns the exit code for the status.
int fail(const Status& status);
int exit_code_for(const Status& status);

// The process exit code, set by the subcommand that ran.
int& exit_status();

void add_node_command(CLI::App& app);
void add_key_commands(CLI::App& app);
void add_statement_commands(CLI::App& app);
void add_audit_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_cluster_commands(CLI::App& app);
// The health domain (docs/domain.md): one function per family.
void add_org_commands(CLI::App& app);
// `order create|verify|program|show` and `report` (cmd_infusion.cc).
void add_infusion_commands(CLI::App& app);
// device, firmware, advisory and drug-library (cmd_devices.cc).
void add_device_commands(CLI::App& app);
void add_record_commands(CLI::App& app);
// `simulate`: a hospital of MQTT devices and clinicians (cmd_simulate.cc).
void add_simulate_command(CLI::App& app);
// The device gateway and its broker (docs/gateway.md).
void add_gateway_commands(CLI::App& app);

// GETs a JSON document and prints it indented (the --json form of show
// commands, and what they fall back to).
Status get_and_print_json(NodeClient& client, const std::string& path);

}  // namespace custos::cli
