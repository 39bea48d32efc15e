// The incident report of one infusion: every step of its chain in log order
// (the prescriber's order, the pharmacy's verification, the nurse's pump
// programming, the pump's own events), each with its signer, the pump and
// the firmware and drug library it ran at that moment, the entry and its
// quorum receipt; then the deviations, each attributed to the step and the
// party where it arose. docs/domain.md ("Infusion traceability and the
// incident report") lists every deviation code, its trigger and its party.
//
// Reads only through ledger::Ledger's public API (index scans by ref, entry
// reads, key records, the domain's records, receipts). Deterministic: the
// same log gives the same report, and the report covers exactly the entries
// below `log_size` (the log when it started). Bounded by the limits below.
// Thread-safe as the ledger's reads are.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec/cbor.h"
#include "domain/model.h"
#include "ledger/ledger.h"

namespace custos::domain {

// Entries naming one order that a report examines; beyond it the report
// says `truncated` (a real infusion has tens).
inline constexpr size_t kReportStepsMax = 512;
// Distinct pumps whose history one report reads.
inline constexpr size_t kReportDevicesMax = 16;
// Firmware installs of one pump examined for "which firmware at that moment".
inline constexpr size_t kFirmwareHistoryMax = 256;
// Advisories naming one firmware version examined.
inline constexpr size_t kAdvisoriesPerFirmwareMax = 64;
// A programmed value matches the expected one when within this fraction of
// it (1 %: display rounding, never a clinical difference).
inline constexpr double kValueTolerance = 0.01;
// Orders returned per page of a patient's orders.
inline constexpr size_t kPatientOrdersPageMax = 100;

enum class StepKind { kOrder, kVerification, kProgramming, kDeviceEvent, kOther };
const char* step_kind_name(StepKind kind);

// Who signed a step, as the key registry knows the key.
struct StepSigner {
  Hash256 kid{};
  std::string name;  // registered key name
  std::vector<std::string> roles;
  std::string org;     // organisation id; empty for none
  std::string device;  // the device whose own key this is; empty otherwise
  // Set when the key was revoked (or rotated away) after it signed: the
  // entry stays valid, the key signs nothing more.
  std::optional<uint64_t> revoked_index;
  uint64_t revoked_ms = 0;
  // "revoked by <key name>: <reason>", "rotated to a successor key: <reason>",
  // "revoked when the device was decommissioned: <reason>"
  std::string revoked_how;
};

// The firmware a pump ran at a step: its latest install before the step.
struct FirmwareAt {
  std::string version;
  Hash256 image_sha256{};
  Hash256 since_entry{};  // the install (or the registration naming it)
  uint64_t since_index = 0;
  uint64_t since_ms = 0;
};

struct Step {
  size_t number = 0;  // 1-based position in the timeline
  StepKind kind = StepKind::kOther;
  std::string event;  // device events: "start", "alarm", ...; verifications: the outcome
  Hash256 entry{};
  uint64_t index = 0;
  uint64_t registered_ms = 0;  // block time: the consortium's clock
  uint64_t issued_at_s = 0;    // the signer's clock
  uint64_t sequence = 0;
  std::optional<ledger::SequenceOutcome> gap;
  StepSigner signer;
  std::string device;                  // the pump (programmed, or signing)
  std::optional<FirmwareAt> firmware;  // absent when none was ever recorded
  std::string drug_library;            // as the statement names it; empty if it does not
  cbor::Value payload;                 // the statement's payload
  std::vector<std::string> flags;      // as registered (ledger/rules.h)
  Bytes statement;                     // the exact registered bytes
  Bytes receipt;                       // quorum receipt bundle; empty when not asked or none
  std::string receipt_error;           // why there is no receipt (e.g. no quorum yet)
};

// The party a deviation is attributed to: a key holder (by the role it
// acted in: prescriber, pharmacist, nurse, device) or an organisation
// (maker, hospital).
struct Party {
  std::string role;
  std::string name;  // key name, device id, or organisation id
  std::string org;
};

struct Deviation {
  std::string code;
  size_t step = 0;  // Step::number where it arose
  Party party;
  std::string detail;
  std::string about;   // what it names: advisory id, alarm, field, kid ...; may be empty
  std::string timing;  // advisories: "at-the-time", "during", "later"; else empty
};

struct IncidentReport {
  std::string order_id;
  std::optional<MedicationOrder> order;  // absent when no order statement was recorded
  // ordered, verified, rejected, programmed, running, ended (from the pump's
  // events), or unknown (no order recorded).
  std::string status;
  uint64_t log_size = 0;  // the report covers the entries below this index
  std::vector<Step> steps;
  std::vector<Deviation> deviations;
  bool truncated = false;  // more than kReportStepsMax entries name the order
};

struct ReportOptions {
  bool receipts = true;  // fetch each step's receipt bundle
};

// kNotFound when no order record exists and no entry names the order;
// kInvalidArgument for an id that is not an order id. Storage errors pass
// through.
Result<IncidentReport> incident_report(const ledger::Ledger& ledger, std::string_view order_id,
                                       const ReportOptions& options = {});

// The orders of one patient (pseudonym), in log order, a page at a time:
// `cursor` is the first log index to consider (0 to start).
struct OrderPage {
  std::vector<MedicationOrder> orders;
  std::optional<uint64_t> next_cursor;
};
Result<OrderPage> patient_orders(const ledger::Ledger& ledger, std::string_view pseudonym,
                                 uint64_t cursor, size_t limit);

}  // namespace custos::domain
