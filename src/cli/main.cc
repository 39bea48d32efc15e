// custos: one binary for running a node and for every client task.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/common.h"

int main(int argc, char** argv) {
  CLI::App app{"custos: a permissioned, verifiable ledger for the Internet of Medical Things"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "custos 0.1.0");
  custos::cli::add_node_command(app);
  custos::cli::add_cluster_commands(app);
  custos::cli::add_key_commands(app);
  custos::cli::add_statement_commands(app);
  custos::cli::add_org_commands(app);
  custos::cli::add_infusion_commands(app);
  custos::cli::add_device_commands(app);
  custos::cli::add_record_commands(app);
  custos::cli::add_simulate_command(app);
  custos::cli::add_audit_command(app);
  custos::cli::add_bench_command(app);
  custos::cli::add_gateway_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : custos::cli::kExitUsage;
  } catch (const nlohmann::json::exception& e) {
    // A value of an unexpected type in a node's answer, for every command:
    // a clear error and an exit code, never an abort.
    return custos::cli::fail(
        custos::error(custos::ErrorCode::kMalformed,
                      std::string("unexpected answer from the node: ") + e.what()));
  }
  return custos::cli::exit_status();
}
