// Devices, firmware, advisories, drug libraries and the events devices sign
// (docs/domain.md, "Devices"). Each statement is parsed by one function used
// by both stages, so the admission check and the execution see the same
// fields.
#include <algorithm>

#include "crypto/keys.h"
#include "domain/rules.h"
#include "ledger/policy.h"

namespace custos::domain {

namespace {

using ledger::kRoleAuditor;
using ledger::kRoleBiomed;
using ledger::kRoleDevice;
using ledger::kRoleOrgAdmin;
using ledger::kRolePharmacist;

// GS1 AI (10) lot and (21) serial are at most 20 characters.
constexpr size_t kGs1FieldBytesMax = 20;
constexpr size_t kLocationBytesMax = 128;

const std::vector<std::string_view> kDeviceClasses = {
    "infusion-pump", "patient-monitor", "ventilator", "glucose-monitor", "syringe-pump", "other"};
const std::vector<std::string_view> kMaintenanceKinds = {"preventive", "repair", "calibration",
                                                         "inspection", "software"};
const std::vector<std::string_view> kMaintenanceOutcomes = {"pass", "fail", "not-applicable"};
const std::vector<std::string_view> kSeverities = {"low", "medium", "high", "critical"};

// The kinds of events a device signs (IEEE 11073 / IHE PCD vocabulary in
// plain words; docs/domain.md maps them).
const std::vector<std::string_view> kEventKinds = {"programming",
                                                   "start",
                                                   "rate-change",
                                                   "pause",
                                                   "restart",
                                                   "stop",
                                                   "completion",
                                                   "near-end",
                                                   "soft-limit-alert",
                                                   "soft-limit-override",
                                                   "hard-limit-stop",
                                                   "alarm",
                                                   "alarm-cleared",
                                                   "status",
                                                   "bolus"};
const std::vector<std::string_view> kAlarmKinds = {
    "occlusion-upstream", "occlusion-downstream", "air-in-line", "door-open",      "battery-low",
    "battery-depleted",   "system-error",         "free-flow",   "empty-container"};
const std::vector<std::string_view> kPriorities = {"low", "medium", "high"};
const std::vector<std::string_view> kLimitKinds = {"soft", "hard"};
const std::vector<std::string_view> kLimitBounds = {"upper", "lower"};

std::string fw_ref(std::string_view maker, std::string_view version) {
  return std::string(maker) + "/" + std::string(version);
}

bool has(const std::vector<std::string>& v, std::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// A firmware version is a component of record keys ("i/<maker>/<version>/
// <device>", "f/...", "v/..."), so it must not hold the separator: device "a"
// on version "1.0/x" and device "x/a" on "1.0" would share "i/<maker>/1.0/x/a".
Status check_version(PayloadReader& p, std::string_view field, std::string_view version) {
  if (version.find('/') != std::string_view::npos)
    return p.fail(field, "a firmware version must not contain '/'");
  return Status();
}

// --- Device registration ---

constexpr const char* kWhatRegister = "device registration";

struct DeviceRegistration {
  Device device;
  Bytes spki_der;
  std::optional<std::pair<std::string, Hash256>> firmware;  // version, image
};

Result<DeviceRegistration> parse_register(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatRegister));
  DeviceRegistration r;
  Device& d = r.device;
  CUSTOS_ASSIGN_OR_RETURN(d.id, p.id("device"));
  CUSTOS_ASSIGN_OR_RETURN(d.device_class, p.one_of("class", kDeviceClasses));
  CUSTOS_ASSIGN_OR_RETURN(d.model, p.text("model", kNameBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader udi, p.map("udi"));
  CUSTOS_ASSIGN_OR_RETURN(d.udi.di, udi.text("di", 14));
  if (Status s = check_gtin(d.udi.di); !s.ok()) return udi.fail("di", s.message());
  if (d.udi.di.size() != 14) return udi.fail("di", "a UDI-DI is written as a GTIN-14");
  CUSTOS_ASSIGN_OR_RETURN(d.udi.serial, udi.text("serial", kGs1FieldBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(auto lot, udi.optional_text("lot", kGs1FieldBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(auto made, udi.optional_date("manufactured"));
  CUSTOS_ASSIGN_OR_RETURN(auto expires, udi.optional_date("expires"));
  CUSTOS_RETURN_IF_ERROR(udi.finish());
  d.udi.lot = lot.value_or("");
  d.udi.manufactured = made.value_or("");
  d.udi.expires = expires.value_or("");
  if (made && expires && *expires < *made)
    return udi.fail("expires", "is before the manufacturing date");
  CUSTOS_ASSIGN_OR_RETURN(r.spki_der, p.bytes("key", ledger::kSpkiBytesMax));
  auto key = crypto::PublicKey::from_spki_der(r.spki_der);
  if (!key.ok()) return p.fail("key", key.status().message());
  d.kid = key->kid();
  if (auto fw = p.optional_map("firmware")) {
    CUSTOS_ASSIGN_OR_RETURN(std::string version, fw->text("version", kVersionBytesMax));
    CUSTOS_RETURN_IF_ERROR(check_version(*fw, "version", version));
    CUSTOS_ASSIGN_OR_RETURN(Hash256 image, fw->digest("image_sha256"));
    CUSTOS_RETURN_IF_ERROR(fw->finish());
    r.firmware = std::make_pair(version, image);
  } else if (p.has("firmware")) {
    return p.fail("firmware", "must be a map {version, image_sha256}");
  }
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return r;
}

// "u/<di>/<serial>": one device per UDI; a second registration of the same
// UDI (a cloned identity) is refused.
Bytes udi_key(const Udi& udi) {
  std::string k = "u/" + udi.di + "/" + udi.serial;
  return Bytes(k.begin(), k.end());
}

// Flags for a device running `fw`: firmware the maker never released (or an
// image that differs from the release), not approved for the model, or named
// in an advisory.
Status flag_firmware(Apply& a, const Device& d, const FirmwareState& fw) {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<FirmwareRelease> rel, a.firmware(d.maker, fw.version));
  if (!rel) {
    a.flag(kFlagFirmwareUnknown, "version " + fw.version + " is not a release of " + d.maker);
  } else if (rel->image_sha256 != fw.image_sha256) {
    a.flag(kFlagFirmwareUnknown, "image of version " + fw.version + " differs from " + d.maker +
                                     "'s release (" + to_hex(fw.image_sha256).substr(0, 16) + ")");
  } else if (!has(rel->models, d.model)) {
    a.flag(kFlagFirmwareUnapproved,
           "version " + fw.version + " is not approved for model " + d.model);
  }
  CUSTOS_ASSIGN_OR_RETURN(std::vector<Advisory> advs,
                          a.advisories_for(d.maker, d.model, fw.version));
  for (const Advisory& adv : advs) {
    a.flag(kFlagFirmwareUnderAdvisory, adv.id + " (" + adv.severity + ") names " + d.maker + " " +
                                           d.model + " firmware " + fw.version);
  }
  return Status();
}

void set_firmware(Apply& a, Device& d, FirmwareState fw) {
  if (d.firmware) a.remove(installed_firmware_key(d.maker, d.firmware->version, d.id));
  a.put(installed_firmware_key(d.maker, fw.version, d.id), {});
  d.firmware = std::move(fw);
}

Status apply_register(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(DeviceRegistration r, parse_register(a.statement));
  Device& d = r.device;
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> existing, a.device(d.id));
  if (existing)
    return a.refuse(ErrorCode::kConflict, std::string(kWhatRegister) + ": field 'device': '" +
                                              d.id + "' is already registered");
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Bytes> udi_owner, a.state.get(udi_key(d.udi)));
  if (udi_owner) {
    return a.refuse(ErrorCode::kConflict,
                    std::string(kWhatRegister) + ": field 'udi': " + d.udi.hrf() +
                        " is already registered to device '" +
                        std::string(udi_owner->begin(), udi_owner->end()) + "'");
  }
  if (a.context.keys->find(d.kid))
    return a.refuse(ErrorCode::kConflict, std::string(kWhatRegister) + ": field 'key': kid " +
                                              to_hex(d.kid) + " is already registered");
  d.maker = a.signer_org->id;
  d.holder = d.maker;
  d.registered_index = a.index();
  if (r.firmware) {
    FirmwareState fw{r.firmware->first, r.firmware->second, a.index(), a.time_ms()};
    CUSTOS_RETURN_IF_ERROR(flag_firmware(a, d, fw));
    set_firmware(a, d, fw);
    a.add_ref("device-firmware", d.id);
  }
  a.put(device_key(d.id), d.encode());
  a.put(device_kid_key(d.kid), Bytes(d.id.begin(), d.id.end()));
  a.put(udi_key(d.udi), Bytes(d.id.begin(), d.id.end()));
  CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKey::from_spki_der(r.spki_der));
  ledger::KeyState ks{key, d.id, kRoleDevice};
  ks.org = d.maker;
  a.outcome.register_keys.push_back(std::move(ks));
  a.add_ref("device", d.id);
  a.add_ref("device-custody", d.id);
  a.add_ref("org", d.maker);
  return Status();
}

// A device that exists and is in service, for statements about it.
Result<Device> active_device(Apply& a, const std::string& id, const char* what) {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> d, a.device(id));
  if (!d)
    return a.refuse(ErrorCode::kNotFound,
                    std::string(what) + ": field 'device': '" + id + "' is not registered");
  if (d->status != DeviceStatus::kActive)
    return a.refuse(ErrorCode::kConflict,
                    std::string(what) + ": device '" + id + "' is decommissioned");
  return std::move(*d);
}

Status require_holder(const Apply& a, const Device& d, const char* what) {
  if (d.holder != a.signer_org->id) {
    return a.refuse(ErrorCode::kPolicy, std::string(what) + ": device '" + d.id + "' is held by '" +
                                            d.holder + "', not by the signer's organisation '" +
                                            a.signer_org->id + "'");
  }
  return Status();
}

// --- Custody ---

constexpr const char* kWhatCustody = "device custody transfer";

struct Custody {
  std::string device;
  std::string to;
};

Result<Custody> parse_custody(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatCustody));
  Custody c;
  CUSTOS_ASSIGN_OR_RETURN(c.device, p.id("device"));
  CUSTOS_ASSIGN_OR_RETURN(c.to, p.text("to", ledger::kOrgIdBytesMax));
  if (Status s = ledger::check_org_id(c.to); !s.ok()) return p.fail("to", s.message());
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return c;
}

Status apply_custody(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(Custody c, parse_custody(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(Device d, active_device(a, c.device, kWhatCustody));
  CUSTOS_RETURN_IF_ERROR(require_holder(a, d, kWhatCustody));
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Org> to, a.org(c.to));
  if (!to)
    return a.refuse(
        ErrorCode::kNotFound,
        std::string(kWhatCustody) + ": field 'to': organisation '" + c.to + "' is not registered");
  if (!(to->kind & (kOrgMaker | kOrgDistributor | kOrgHospital)))
    return a.refuse(ErrorCode::kPolicy, std::string(kWhatCustody) + ": field 'to': '" + c.to +
                                            "' is a " + org_kind_name(to->kind) +
                                            "; devices go to makers, distributors and hospitals");
  if (c.to == d.holder)
    return a.refuse(ErrorCode::kConflict,
                    std::string(kWhatCustody) + ": field 'to': '" + c.to + "' already holds it");
  a.add_ref("org", d.holder);
  d.holder = c.to;
  d.care_area.clear();  // installed again by the new holder
  d.location.clear();
  a.put(device_key(d.id), d.encode());
  a.add_ref("device", d.id);
  a.add_ref("device-custody", d.id);
  a.add_ref("org", c.to);
  return Status();
}

// --- Installation ---

constexpr const char* kWhatInstall = "device installation";

struct Install {
  std::string device;
  std::string care_area;
  std::string location;
};

Result<Install> parse_install(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatInstall));
  Install i;
  CUSTOS_ASSIGN_OR_RETURN(i.device, p.id("device"));
  CUSTOS_ASSIGN_OR_RETURN(i.care_area, p.text("care_area", kCareAreaBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(i.location, p.text("location", kLocationBytesMax));
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return i;
}

Status apply_install(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(Install i, parse_install(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(Device d, active_device(a, i.device, kWhatInstall));
  CUSTOS_RETURN_IF_ERROR(require_holder(a, d, kWhatInstall));
  d.care_area = i.care_area;
  d.location = i.location;
  a.put(device_key(d.id), d.encode());
  a.add_ref("device", d.id);
  a.add_ref("device-custody", d.id);
  return Status();
}

// --- Maintenance ---

constexpr const char* kWhatMaintenance = "device maintenance";

struct Maintenance {
  std::string device;
};

Result<Maintenance> parse_maintenance(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatMaintenance));
  Maintenance m;
  CUSTOS_ASSIGN_OR_RETURN(m.device, p.id("device"));
  CUSTOS_RETURN_IF_ERROR(p.one_of("kind", kMaintenanceKinds).status());
  CUSTOS_RETURN_IF_ERROR(p.one_of("outcome", kMaintenanceOutcomes).status());
  CUSTOS_RETURN_IF_ERROR(p.optional_text("note", kNoteBytesMax).status());
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return m;
}

Status apply_maintenance(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(Maintenance m, parse_maintenance(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(Device d, active_device(a, m.device, kWhatMaintenance));
  // The holder services its devices; the maker may too (field service).
  if (a.signer_org->id != d.maker) CUSTOS_RETURN_IF_ERROR(require_holder(a, d, kWhatMaintenance));
  a.add_ref("device", d.id);
  return Status();
}

// --- Decommissioning ---

constexpr const char* kWhatDecommission = "device decommissioning";

struct Decommission {
  std::string device;
};

Result<Decommission> parse_decommission(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatDecommission));
  Decommission dc;
  CUSTOS_ASSIGN_OR_RETURN(dc.device, p.id("device"));
  CUSTOS_RETURN_IF_ERROR(p.text("reason", kNoteBytesMax).status());
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return dc;
}

Status apply_decommission(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(Decommission dc, parse_decommission(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(Device d, active_device(a, dc.device, kWhatDecommission));
  CUSTOS_RETURN_IF_ERROR(require_holder(a, d, kWhatDecommission));
  d.status = DeviceStatus::kDecommissioned;
  if (d.firmware) a.remove(installed_firmware_key(d.maker, d.firmware->version, d.id));
  a.put(device_key(d.id), d.encode());
  // Its key signs nothing more; what it signed before stays valid.
  if (const ledger::KeyState* k = a.context.keys->find(d.kid); k && !k->revoked())
    a.outcome.revoke_keys.push_back(d.kid);
  a.add_ref("device", d.id);
  a.add_ref("device-custody", d.id);
  return Status();
}

// --- Firmware releases ---

constexpr const char* kWhatRelease = "firmware release";

Result<FirmwareRelease> parse_release(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatRelease));
  FirmwareRelease r;
  CUSTOS_ASSIGN_OR_RETURN(r.version, p.text("version", kVersionBytesMax));
  if (Status s = check_id(r.version); !s.ok()) return p.fail("version", s.message());
  CUSTOS_RETURN_IF_ERROR(check_version(p, "version", r.version));
  CUSTOS_ASSIGN_OR_RETURN(r.image_sha256, p.digest("image_sha256"));
  CUSTOS_ASSIGN_OR_RETURN(r.sbom_sha256, p.digest("sbom_sha256"));
  CUSTOS_ASSIGN_OR_RETURN(r.models, p.text_list("models", kListItemsMax, kNameBytesMax));
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return r;
}

Status apply_release(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(FirmwareRelease r, parse_release(a.statement));
  r.maker = a.signer_org->id;
  CUSTOS_ASSIGN_OR_RETURN(std::optional<FirmwareRelease> existing, a.firmware(r.maker, r.version));
  if (existing)
    return a.refuse(ErrorCode::kConflict, std::string(kWhatRelease) + ": field 'version': " +
                                              r.maker + " already released " + r.version);
  r.index = a.index();
  a.put(firmware_key(r.maker, r.version), r.encode());
  a.add_ref("firmware", fw_ref(r.maker, r.version));
  a.add_ref("org", r.maker);
  return Status();
}

// --- Firmware installation (signed by the device itself) ---

constexpr const char* kWhatFirmwareInstall = "firmware installation";

Result<FirmwareState> parse_firmware_install(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatFirmwareInstall));
  FirmwareState fw;
  CUSTOS_ASSIGN_OR_RETURN(fw.version, p.text("version", kVersionBytesMax));
  CUSTOS_RETURN_IF_ERROR(check_version(p, "version", fw.version));
  CUSTOS_ASSIGN_OR_RETURN(fw.image_sha256, p.digest("image_sha256"));
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return fw;
}

// The device whose key signed the statement.
Result<Device> signing_device(Apply& a, const char* what) {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> d, a.device_by_kid(a.statement.header.kid));
  if (!d)
    return a.refuse(ErrorCode::kPolicy, std::string(what) +
                                            ": the signing key is not a registered "
                                            "device's own key");
  if (d->status != DeviceStatus::kActive)
    return a.refuse(ErrorCode::kConflict,
                    std::string(what) + ": device '" + d->id + "' is decommissioned");
  return std::move(*d);
}

Status apply_firmware_install(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(FirmwareState fw, parse_firmware_install(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(Device d, signing_device(a, kWhatFirmwareInstall));
  fw.since_index = a.index();
  fw.since_ms = a.time_ms();
  // Rogue or unapproved firmware is recorded, not refused: the ledger's job
  // is to show what the device ran.
  CUSTOS_RETURN_IF_ERROR(flag_firmware(a, d, fw));
  set_firmware(a, d, fw);
  a.put(device_key(d.id), d.encode());
  a.add_ref("device", d.id);
  a.add_ref("device-firmware", d.id);
  a.add_ref("firmware", fw_ref(d.maker, fw.version));
  return Status();
}

// --- Advisories ---

constexpr const char* kWhatAdvisory = "advisory";

bool is_cve(std::string_view s) {
  // CVE-YYYY-NNNN with at least four digits after the year.
  if (s.size() < 13 || s.substr(0, 4) != "CVE-" || s[8] != '-') return false;
  const auto digits = [](std::string_view d) {
    return !d.empty() &&
           std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return digits(s.substr(4, 4)) && digits(s.substr(9)) && s.size() - 9 >= 4;
}

Result<Advisory> parse_advisory(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatAdvisory));
  Advisory adv;
  CUSTOS_ASSIGN_OR_RETURN(adv.id, p.id("id"));
  CUSTOS_ASSIGN_OR_RETURN(adv.maker, p.text("maker", ledger::kOrgIdBytesMax));
  if (Status s = ledger::check_org_id(adv.maker); !s.ok()) return p.fail("maker", s.message());
  if (p.has("models")) {
    CUSTOS_ASSIGN_OR_RETURN(adv.models, p.text_list("models", kListItemsMax, kNameBytesMax));
  }
  CUSTOS_ASSIGN_OR_RETURN(adv.versions, p.text_list("versions", kListItemsMax, kVersionBytesMax));
  for (const auto& v : adv.versions) CUSTOS_RETURN_IF_ERROR(check_version(p, "versions", v));
  if (p.has("cves")) {
    CUSTOS_ASSIGN_OR_RETURN(adv.cves, p.text_list("cves", kListItemsMax, 32));
    for (const auto& c : adv.cves) {
      if (!is_cve(c)) return p.fail("cves", "'" + c + "' is not a CVE id (CVE-YYYY-NNNN)");
    }
  }
  CUSTOS_ASSIGN_OR_RETURN(adv.severity, p.one_of("severity", kSeverities));
  CUSTOS_ASSIGN_OR_RETURN(auto fixed, p.optional_text("fixed_in", kVersionBytesMax));
  adv.fixed_in = fixed.value_or("");
  CUSTOS_RETURN_IF_ERROR(check_version(p, "fixed_in", adv.fixed_in));
  if (!adv.fixed_in.empty() && has(adv.versions, adv.fixed_in))
    return p.fail("fixed_in", "is one of the affected versions");
  CUSTOS_RETURN_IF_ERROR(p.optional_text("summary", kNoteBytesMax).status());
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return adv;
}

Status apply_advisory(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(Advisory adv, parse_advisory(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Advisory> existing, a.advisory(adv.id));
  if (existing)
    return a.refuse(ErrorCode::kConflict, std::string(kWhatAdvisory) + ": field 'id': '" + adv.id +
                                              "' is already published");
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Org> maker, a.org(adv.maker));
  if (!maker || maker->kind != kOrgMaker)
    return a.refuse(ErrorCode::kNotFound, std::string(kWhatAdvisory) + ": field 'maker': '" +
                                              adv.maker + "' is not a registered device maker");
  // A maker speaks for its own devices; a regulator for anyone's.
  if (a.signer_org->kind == kOrgMaker && a.signer_org->id != adv.maker)
    return a.refuse(
        ErrorCode::kPolicy,
        std::string(kWhatAdvisory) + ": a maker publishes advisories only for its own devices");
  adv.issuer = a.signer_org->id;
  adv.index = a.index();
  adv.published_ms = a.time_ms();
  a.put(advisory_key(adv.id), adv.encode());
  for (const auto& version : adv.versions) {
    const Bytes key = advisories_by_firmware_key(adv.maker, version);
    CUSTOS_ASSIGN_OR_RETURN(std::optional<Bytes> list, a.state.get(key));
    cbor::Array ids;
    if (list) {
      auto v = cbor::decode(*list);
      if (!v.ok() || !v->is(cbor::Type::kArray))
        return error(ErrorCode::kCorruption, "advisory list record does not decode");
      ids = v->as_array();
    }
    ids.push_back(cbor::text(adv.id));
    a.put(key, cbor::encode(cbor::Value::array(std::move(ids))));
  }
  a.add_ref("advisory", adv.id);
  a.add_ref("org", adv.maker);
  for (const auto& version : adv.versions) a.add_ref("firmware", fw_ref(adv.maker, version));
  return Status();
}

// --- Drug libraries ---

constexpr const char* kWhatLibrary = "drug library release";

Result<DrugLibrary> parse_library(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatLibrary));
  DrugLibrary l;
  CUSTOS_ASSIGN_OR_RETURN(l.version, p.text("version", kVersionBytesMax));
  if (Status s = check_id(l.version); !s.ok()) return p.fail("version", s.message());
  CUSTOS_ASSIGN_OR_RETURN(l.sha256, p.digest("sha256"));
  if (p.has("care_areas"))
    CUSTOS_RETURN_IF_ERROR(p.text_list("care_areas", kListItemsMax, kCareAreaBytesMax).status());
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return l;
}

Status apply_library(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(DrugLibrary l, parse_library(a.statement));
  l.hospital = a.signer_org->id;
  CUSTOS_ASSIGN_OR_RETURN(std::optional<DrugLibrary> current, a.drug_library(l.hospital));
  if (current && current->version == l.version)
    return a.refuse(ErrorCode::kConflict, std::string(kWhatLibrary) + ": field 'version': " +
                                              l.version + " is already the current library");
  l.index = a.index();
  l.since_ms = a.time_ms();
  a.put(drug_library_key(l.hospital), l.encode());
  a.add_ref("drug-library", l.hospital);
  return Status();
}

// --- Device events (signed by the device) ---

constexpr const char* kWhatEvent = "device event";

struct DeviceEvent {
  std::string kind;
  std::optional<std::string> order;
  std::optional<std::string> drug_library;
};

Result<DeviceEvent> parse_event(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatEvent));
  DeviceEvent e;
  CUSTOS_ASSIGN_OR_RETURN(e.kind, p.one_of("event", kEventKinds));
  CUSTOS_ASSIGN_OR_RETURN(e.order, p.optional_id("order"));
  CUSTOS_ASSIGN_OR_RETURN(e.drug_library, p.optional_text("drug_library", kVersionBytesMax));
  const bool programming = e.kind == "programming";
  const bool limit = e.kind == "soft-limit-alert" || e.kind == "soft-limit-override" ||
                     e.kind == "hard-limit-stop";
  const bool alarm = e.kind == "alarm" || e.kind == "alarm-cleared";
  // Fields each kind needs; the rest are optional everywhere.
  if (programming || e.kind == "rate-change") {
    CUSTOS_RETURN_IF_ERROR(p.number("rate_ml_h", 0, kRateMlPerHourMax).status());
  } else {
    CUSTOS_RETURN_IF_ERROR(p.optional_number("rate_ml_h", 0, kRateMlPerHourMax).status());
  }
  if (programming) {
    CUSTOS_RETURN_IF_ERROR(p.number("vtbi_ml", 0, kVolumeMlMax).status());
    CUSTOS_RETURN_IF_ERROR(p.text("drug", kNameBytesMax).status());
    if (!e.drug_library && !p.has("library_bypassed"))
      return p.fail("drug_library",
                    "programming names the drug library used (or library_bypassed)");
  } else {
    CUSTOS_RETURN_IF_ERROR(p.optional_number("vtbi_ml", 0, kVolumeMlMax).status());
    CUSTOS_RETURN_IF_ERROR(p.optional_text("drug", kNameBytesMax).status());
  }
  if (p.has("library_bypassed")) {
    CUSTOS_RETURN_IF_ERROR(p.one_of("library_bypassed", {"yes"}).status());
  }
  if (p.has("dose"))
    CUSTOS_RETURN_IF_ERROR(read_quantity(p, "dose", kDoseValueMax, false).status());
  CUSTOS_RETURN_IF_ERROR(p.optional_number("volume_infused_ml", 0, kVolumeMlMax).status());
  CUSTOS_RETURN_IF_ERROR(p.optional_text("care_area", kCareAreaBytesMax).status());
  if (limit) {
    CUSTOS_ASSIGN_OR_RETURN(PayloadReader l, p.map("limit"));
    CUSTOS_ASSIGN_OR_RETURN(std::string lk, l.one_of("kind", kLimitKinds));
    if ((e.kind == "hard-limit-stop") != (lk == "hard"))
      return l.fail("kind", "a " + e.kind + " concerns a " +
                                (e.kind == "hard-limit-stop" ? "hard" : "soft") + " limit");
    CUSTOS_RETURN_IF_ERROR(l.one_of("bound", kLimitBounds).status());
    CUSTOS_RETURN_IF_ERROR(l.number("value", 0, kDoseValueMax).status());
    CUSTOS_RETURN_IF_ERROR(l.one_of("unit", dose_units()).status());
    CUSTOS_RETURN_IF_ERROR(l.finish());
  } else if (p.has("limit")) {
    return p.fail("limit", "only limit events carry a limit");
  }
  if (alarm) {
    CUSTOS_RETURN_IF_ERROR(p.one_of("alarm", kAlarmKinds).status());
    CUSTOS_RETURN_IF_ERROR(p.optional_one_of("priority", kPriorities).status());
  } else if (p.has("alarm")) {
    return p.fail("alarm", "only alarm events name an alarm");
  }
  if (e.kind == "status") {
    CUSTOS_RETURN_IF_ERROR(p.optional_number("battery_pct", 0, 100).status());
    CUSTOS_RETURN_IF_ERROR(
        p.optional_one_of("state", {"idle", "infusing", "paused", "alarming", "off"}).status());
  }
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return e;
}

Status apply_event(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(DeviceEvent e, parse_event(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(Device d, signing_device(a, kWhatEvent));
  // Accepted, but flagged: what the device ran, where it was, its library.
  if (d.firmware) CUSTOS_RETURN_IF_ERROR(flag_firmware(a, d, *d.firmware));
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Org> holder, a.org(d.holder));
  if (!holder || holder->kind != kOrgHospital || d.care_area.empty()) {
    a.flag(kFlagDeviceNotInstalled, "device '" + d.id + "' is held by '" + d.holder + "'" +
                                        (d.care_area.empty() ? " and not installed" : ""));
  }
  if (e.drug_library) {
    CUSTOS_ASSIGN_OR_RETURN(std::optional<DrugLibrary> current, a.drug_library(d.holder));
    if (current && current->version != *e.drug_library) {
      a.flag(kFlagDrugLibraryOutdated, "device uses " + *e.drug_library + "; " + d.holder +
                                           "'s current library is " + current->version);
    }
    a.add_ref("device-library", d.id);
  }
  a.add_ref("device", d.id);
  if (e.order) a.add_ref("order", *e.order);
  return Status();
}

constexpr uint32_t kEngineers = kRoleOrgAdmin | kRoleBiomed;

constexpr TypeRule kDeviceRules[] = {
    {kTypeDeviceRegister, kWhatRegister, kEngineers, kOrgMaker, check_by_parsing<parse_register>,
     apply_register},
    {kTypeDeviceCustody, kWhatCustody, kEngineers, kOrgMaker | kOrgDistributor | kOrgHospital,
     check_by_parsing<parse_custody>, apply_custody},
    {kTypeDeviceInstall, kWhatInstall, kEngineers, kOrgHospital, check_by_parsing<parse_install>,
     apply_install},
    {kTypeDeviceMaintenance, kWhatMaintenance, kEngineers, kOrgHospital | kOrgMaker,
     check_by_parsing<parse_maintenance>, apply_maintenance},
    {kTypeDeviceDecommission, kWhatDecommission, kEngineers,
     kOrgHospital | kOrgMaker | kOrgDistributor, check_by_parsing<parse_decommission>,
     apply_decommission},
    {kTypeFirmwareRelease, kWhatRelease, kEngineers, kOrgMaker, check_by_parsing<parse_release>,
     apply_release},
    {kTypeFirmwareInstall, kWhatFirmwareInstall, kRoleDevice, 0,
     check_by_parsing<parse_firmware_install>, apply_firmware_install},
    {kTypeAdvisory, kWhatAdvisory, kRoleOrgAdmin | kRoleAuditor | kRoleBiomed,
     kOrgMaker | kOrgRegulator, check_by_parsing<parse_advisory>, apply_advisory},
    {kTypeDrugLibrary, kWhatLibrary, kRoleOrgAdmin | kRolePharmacist | kRoleBiomed, kOrgHospital,
     check_by_parsing<parse_library>, apply_library},
    {kTypeDeviceEvent, kWhatEvent, kRoleDevice, 0, check_by_parsing<parse_event>, apply_event},
};

}  // namespace

std::span<const TypeRule> device_rules() {
  return kDeviceRules;
}

}  // namespace custos::domain
