// The health domain's vocabulary: statement content types, organisation
// kinds, and the records the domain rules keep in log order (Column::kDomain,
// through ledger::RuleState). docs/domain.md describes each statement, who
// may sign it and the rules it must pass; docs/formats.md the record layouts.
//
// Records are deterministic CBOR maps with text keys. Every node writes the
// same bytes for the same log, and the audit compares them with a replay.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec/cbor.h"
#include "core/bytes.h"
#include "core/status.h"
#include "domain/payload.h"

namespace custos::domain {

// --- Content types (application/vnd.custos.<name>+cbor) ---
#define CUSTOS_DOMAIN_TYPE(name) "application/vnd.custos." name "+cbor"
inline constexpr std::string_view kTypeOrgRegister = CUSTOS_DOMAIN_TYPE("org-register");
// Devices and firmware.
inline constexpr std::string_view kTypeDeviceRegister = CUSTOS_DOMAIN_TYPE("device-register");
inline constexpr std::string_view kTypeDeviceCustody = CUSTOS_DOMAIN_TYPE("device-custody");
inline constexpr std::string_view kTypeDeviceInstall = CUSTOS_DOMAIN_TYPE("device-install");
inline constexpr std::string_view kTypeDeviceMaintenance = CUSTOS_DOMAIN_TYPE("device-maintenance");
inline constexpr std::string_view kTypeDeviceDecommission =
    CUSTOS_DOMAIN_TYPE("device-decommission");
inline constexpr std::string_view kTypeFirmwareRelease = CUSTOS_DOMAIN_TYPE("firmware-release");
inline constexpr std::string_view kTypeFirmwareInstall = CUSTOS_DOMAIN_TYPE("firmware-install");
inline constexpr std::string_view kTypeAdvisory = CUSTOS_DOMAIN_TYPE("advisory");
inline constexpr std::string_view kTypeDrugLibrary = CUSTOS_DOMAIN_TYPE("drug-library");
// Signed by a device's own key: programming, start, ..., alarms, status.
inline constexpr std::string_view kTypeDeviceEvent = CUSTOS_DOMAIN_TYPE("device-event");
// The infusion chain.
inline constexpr std::string_view kTypeMedicationOrder = CUSTOS_DOMAIN_TYPE("medication-order");
inline constexpr std::string_view kTypePharmacyVerification =
    CUSTOS_DOMAIN_TYPE("pharmacy-verification");
inline constexpr std::string_view kTypePumpProgramming = CUSTOS_DOMAIN_TYPE("pump-programming");
// Off-ledger clinical content (domain/vault.h).
inline constexpr std::string_view kTypeClinicalRecord = CUSTOS_DOMAIN_TYPE("clinical-record");
inline constexpr std::string_view kTypeRecordAccess = CUSTOS_DOMAIN_TYPE("record-access");
inline constexpr std::string_view kTypeRecordErasure = CUSTOS_DOMAIN_TYPE("record-erasure");
#undef CUSTOS_DOMAIN_TYPE

// --- Organisations ---
enum OrgKind : uint32_t {
  kOrgHospital = 1u << 0,
  kOrgMaker = 1u << 1,  // device maker (OEM)
  kOrgPharmacy = 1u << 2,
  kOrgDistributor = 1u << 3,
  kOrgRegulator = 1u << 4,
  kOrgHie = 1u << 5,  // health information exchange
};
const char* org_kind_name(OrgKind kind);
std::optional<OrgKind> org_kind_from_name(std::string_view name);
std::vector<std::string_view> org_kind_names();

// --- Refs (what an entry concerns; ledger/rules.h) ---
// "org:<id>", "device:<id>", "firmware:<maker>/<version>", "advisory:<id>",
// "drug-library:<hospital>", "order:<id>", "patient:<pseudonym>",
// "device-firmware:<id>" (firmware installs of one device only),
// "device-custody:<id>" (what changes who holds a device or where it is
// installed: registration, custody transfers, installations,
// decommissioning; so "holder at time T" is one short index scan),
// "device-library:<id>" (device events that name a drug library).
std::string ref(std::string_view kind, std::string_view id);

// --- Flags (accepted but noteworthy; "<code>: <detail>") ---
inline constexpr std::string_view kFlagFirmwareUnapproved = "firmware-unapproved";
inline constexpr std::string_view kFlagFirmwareUnknown = "firmware-unknown";
inline constexpr std::string_view kFlagFirmwareUnderAdvisory = "firmware-under-advisory";
inline constexpr std::string_view kFlagDrugLibraryOutdated = "drug-library-outdated";
inline constexpr std::string_view kFlagClockSkew = "clock-skew";
inline constexpr std::string_view kFlagDeviceNotInstalled = "device-not-installed";
inline constexpr std::string_view kFlagOutOfOrder = "out-of-order";
// A statement's CWT iat further than this from its block's time is flagged.
inline constexpr uint64_t kClockSkewMaxMs = 5 * 60 * 1000;

// --- Records (keys in Column::kDomain) ---
// Every record key is "<kind letter>/<id...>"; the helpers below build them.
Bytes org_key(std::string_view org);        // "o/<org>"
Bytes device_key(std::string_view device);  // "d/<device>"
Bytes device_kid_key(const Hash256& kid);   // "k/<kid 32 bytes>" -> device id
Bytes firmware_key(std::string_view maker, std::string_view version);  // "f/<maker>/<version>"
Bytes advisory_key(std::string_view id);                               // "a/<id>"
// "v/<maker>/<version>" -> advisory ids naming that firmware version.
Bytes advisories_by_firmware_key(std::string_view maker, std::string_view version);
// "i/<maker>/<version>/<device>" -> empty: devices running that firmware now.
Bytes installed_firmware_key(std::string_view maker, std::string_view version,
                             std::string_view device);
Bytes installed_firmware_prefix(std::string_view maker, std::string_view version);
Bytes drug_library_key(std::string_view hospital);  // "l/<hospital>" -> current library
Bytes order_key(std::string_view order);            // "x/<order>"
// "s/<32-byte entry id>" -> OrderStep: an entry of an order's chain that a
// later step may name as its `prev`.
Bytes order_step_key(const Hash256& entry);

struct Org {
  std::string id;
  std::string name;
  OrgKind kind = kOrgHospital;
  std::string gln;  // optional GS1 GLN of the party
  uint64_t registered_index = 0;

  Bytes encode() const;
  static Result<Org> decode(ByteView bytes);
};

struct Udi {
  std::string di;            // GS1 (01): GTIN-14 with check digit
  std::string serial;        // (21)
  std::string lot;           // (10), optional
  std::string manufactured;  // (11) YYYY-MM-DD, optional
  std::string expires;       // (17) YYYY-MM-DD, optional
  // The GS1 human-readable form "(01)...(11)...(17)...(10)...(21)...".
  std::string hrf() const;
};

struct FirmwareState {
  std::string version;
  Hash256 image_sha256{};
  uint64_t since_index = 0;  // log index of the install (or the registration)
  uint64_t since_ms = 0;     // block time of that entry
};

enum class DeviceStatus { kActive, kDecommissioned };

struct Device {
  std::string id;
  std::string maker;   // org id of the maker that registered it
  std::string holder;  // org id holding custody now
  std::string model;
  std::string device_class;  // "infusion-pump", "patient-monitor", ...
  Udi udi;
  Hash256 kid{};  // the device's own key
  DeviceStatus status = DeviceStatus::kActive;
  std::string care_area;  // where it is installed (empty until installed)
  std::string location;
  std::optional<FirmwareState> firmware;
  uint64_t registered_index = 0;

  Bytes encode() const;
  static Result<Device> decode(ByteView bytes);
};

struct FirmwareRelease {
  std::string maker;
  std::string version;
  Hash256 image_sha256{};
  Hash256 sbom_sha256{};
  std::vector<std::string> models;  // approved models
  uint64_t index = 0;

  Bytes encode() const;
  static Result<FirmwareRelease> decode(ByteView bytes);
};

struct Advisory {
  std::string id;
  std::string issuer;  // org id (maker or regulator)
  std::string maker;   // whose devices it concerns
  std::vector<std::string> models;
  std::vector<std::string> versions;  // affected firmware versions
  std::vector<std::string> cves;
  std::string severity;  // low | medium | high | critical
  std::string fixed_in;  // firmware version that fixes it (optional)
  uint64_t index = 0;
  uint64_t published_ms = 0;

  bool affects(std::string_view model, std::string_view version) const;
  Bytes encode() const;
  static Result<Advisory> decode(ByteView bytes);
};

struct DrugLibrary {
  std::string hospital;
  std::string version;
  Hash256 sha256{};
  uint64_t index = 0;
  uint64_t since_ms = 0;

  Bytes encode() const;
  static Result<DrugLibrary> decode(ByteView bytes);
};

// The record's status follows the chain statements only (order,
// verification, programming); what the pump did after (running, ended) is
// derived from its events when the order is read (domain/incident.h).
enum class OrderStatus { kOrdered, kVerified, kRejected, kProgrammed, kRunning, kEnded };

struct MedicationOrder {
  std::string id;
  std::string hospital;   // org id
  std::string patient;    // pseudonym
  std::string drug;       // drug name as ordered
  std::string drug_code;  // optional code (RxNorm, ATC, local formulary)
  Quantity dose;          // e.g. 5 mg, or a dose rate such as 2 mg/h
  Quantity rate;          // volumetric rate, always mL/h
  double vtbi_ml = 0;     // volume to be infused
  std::string route;      // intravenous, subcutaneous, ...
  std::string care_area;  // e.g. icu (the drug library's care area)
  Hash256 prescriber{};   // kid
  Hash256 entry{};        // entry id of the order statement (what `prev` names)
  uint64_t index = 0;     // log index of the order entry
  uint64_t ordered_ms = 0;
  OrderStatus status = OrderStatus::kOrdered;
  Hash256 verification_entry{};  // entry id of the latest pharmacy verification, zero if none
  Hash256 programming_entry{};   // entry id of the latest pump programming, zero if none
  std::string device;            // pump it was programmed on

  Bytes encode() const;
  static Result<MedicationOrder> decode(ByteView bytes);
};

// Which chain statement an entry is, for checking a later step's `prev`.
struct OrderStep {
  std::string order;
  std::string kind;     // "order", "verification", "programming"
  std::string outcome;  // verifications only: "verified" or "rejected"

  Bytes encode() const;
  static Result<OrderStep> decode(ByteView bytes);
};

const char* order_status_name(OrderStatus status);

// Small CBOR helpers for records.
cbor::Value digest_value(const Hash256& h);
Result<Hash256> digest_of(const cbor::Value& map, std::string_view field);
std::string text_of(const cbor::Value& map, std::string_view field);
uint64_t uint_of(const cbor::Value& map, std::string_view field);
// The text items of an array field (others are skipped); empty if absent.
std::vector<std::string> texts_of(const cbor::Value& map, std::string_view field);
// A stored record's CBOR map; kCorruption, naming `what`, if it is not one.
Result<cbor::Value> decode_record(ByteView bytes, const char* what);

}  // namespace custos::domain
