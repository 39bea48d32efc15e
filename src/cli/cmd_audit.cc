// `custos audit`: re-verifies a whole data directory offline.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "domain/rules.h"
#include "ledger/audit.h"

namespace custos::cli {

void add_audit_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("audit",
                                     "Re-verify a data directory: every signature, registration "
                                     "decision, Merkle root and the block chain");
  cmd->add_option("--data-dir", *dir, "Data directory of a node")->required();
  cmd->add_flag("--json", *as_json, "Print JSON");
  cmd->callback([dir, as_json] {
    ledger::AuditReport report;
    // The nodes run the health domain's rules; the audit replays them too.
    const auto rules = domain::make_rules();
    Status s = ledger::audit(
        *dir, &report,
        [&](const ledger::AuditReport& r) {
          if (!*as_json)
            std::fprintf(stderr, "\r  %llu blocks, %llu entries...", (unsigned long long)r.blocks,
                         (unsigned long long)r.entries);
        },
        rules.get());
    if (!*as_json) std::fprintf(stderr, "\n");
    nlohmann::json j = {{"ok", s.ok()},
                        {"blocks", report.blocks},
                        {"entries", report.entries},
                        {"keys", report.keys},
                        {"signatures_verified", report.signatures_verified},
                        {"receipt_signatures", report.receipt_signatures},
                        {"sequence_gaps", report.sequence_gaps},
                        {"flagged_entries", report.flagged_entries},
                        {"rule_records", report.rule_records},
                        {"root", report.root_hex},
                        {"seconds", report.seconds}};
    if (!s.ok()) j["problem"] = s.to_string();
    if (*as_json) {
      std::printf("%s\n", j.dump(2).c_str());
    } else if (s.ok()) {
      std::printf(
          "audit passed: %llu blocks, %llu entries, %llu keys, %llu signatures verified (%llu of "
          "them consortium receipt signatures), %llu sequence gaps, root %s (%.2f s)\n",
          (unsigned long long)report.blocks, (unsigned long long)report.entries,
          (unsigned long long)report.keys, (unsigned long long)report.signatures_verified,
          (unsigned long long)report.receipt_signatures, (unsigned long long)report.sequence_gaps,
          report.root_hex.c_str(), report.seconds);
    }
    if (!s.ok()) {
      std::fprintf(stderr, "audit FAILED: %s\n", s.to_string().c_str());
      exit_status() =
          s.code() == ErrorCode::kIo || s.code() == ErrorCode::kNotFound ? kExitIo : kExitRefused;
    }
  });
}

}  // namespace custos::cli
