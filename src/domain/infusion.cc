// The infusion chain (docs/domain.md, "Infusion traceability and the
// incident report"): the prescriber's medication order, the pharmacy's
// verification and the nurse's pump programming. The pump's own events
// (devices.cc, ref order:<id>) complete it.
//
// The ledger records reality: a step out of order or missing is accepted
// (flagged, and shown as a deviation in the incident report). Refused are
// only malformed statements, the wrong signer, and references to things
// that do not exist (an unknown order, a `prev` that is not a step of the
// order, an unknown pump or one the hospital does not hold).
#include <algorithm>

#include "crypto/hash.h"
#include "domain/rules.h"
#include "ledger/policy.h"

namespace custos::domain {

namespace {

using ledger::kRoleNurse;
using ledger::kRolePharmacist;
using ledger::kRolePrescriber;

constexpr size_t kDrugCodeBytesMax = 64;
constexpr size_t kEntryIdHexChars = 64;

const std::vector<std::string_view> kRoutes = {"intravenous", "subcutaneous",   "epidural",
                                               "intrathecal", "intra-arterial", "enteral"};
const std::vector<std::string_view> kOutcomes = {"verified", "rejected"};

constexpr std::string_view kStepOrder = "order";
constexpr std::string_view kStepVerification = "verification";
constexpr std::string_view kStepProgramming = "programming";

// --- Shared fields ---

Result<double> read_volume(PayloadReader& p) {
  CUSTOS_ASSIGN_OR_RETURN(double v, p.number("vtbi_ml", 0, kVolumeMlMax));
  if (v <= 0) return p.fail("vtbi_ml", "must be above 0");
  return v;
}

// An entry id: a 32-byte bstr or 64 hex digits (what the API and CLI print).
Result<Hash256> read_entry_id(PayloadReader& p, std::string_view field) {
  const std::string rule = "must be an entry id: a 32-byte bstr or 64 hex digits";
  if (!p.has(field)) return p.fail(field, "is required");
  if (auto digest = p.digest(field); digest.ok()) return *digest;
  auto hex = p.text(field, kEntryIdHexChars);
  if (!hex.ok()) return p.fail(field, rule);
  auto id = hash_from_hex(*hex);
  if (!id.ok()) return p.fail(field, rule);
  return *id;
}

Result<std::string> read_drug(PayloadReader& p) {
  return p.text("drug", kNameBytesMax);
}

std::string short_id(const Hash256& id) {
  return to_hex(id).substr(0, 16);
}

// --- Medication order (prescriber) ---

constexpr const char* kWhatOrder = "medication order";

// {"order": id, "patient": pseudonym, "drug": tstr, ? "drug_code": tstr,
//  "dose": quantity, "rate": {value, "mL/h"}, "vtbi_ml": number,
//  "route": ..., "care_area": tstr}
Result<MedicationOrder> parse_order(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatOrder));
  MedicationOrder o;
  CUSTOS_ASSIGN_OR_RETURN(o.id, p.id("order"));
  CUSTOS_ASSIGN_OR_RETURN(o.patient, p.text("patient", kNameBytesMax));
  if (Status s = check_pseudonym(o.patient); !s.ok()) return p.fail("patient", s.message());
  CUSTOS_ASSIGN_OR_RETURN(o.drug, read_drug(p));
  CUSTOS_ASSIGN_OR_RETURN(auto code, p.optional_text("drug_code", kDrugCodeBytesMax));
  o.drug_code = code.value_or("");
  CUSTOS_ASSIGN_OR_RETURN(o.dose, read_quantity(p, "dose", kDoseValueMax, false));
  CUSTOS_ASSIGN_OR_RETURN(o.rate, read_quantity(p, "rate", kRateMlPerHourMax, true));
  CUSTOS_ASSIGN_OR_RETURN(o.vtbi_ml, read_volume(p));
  CUSTOS_ASSIGN_OR_RETURN(o.route, p.one_of("route", kRoutes));
  CUSTOS_ASSIGN_OR_RETURN(o.care_area, p.text("care_area", kCareAreaBytesMax));
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return o;
}

Status apply_order(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(MedicationOrder o, parse_order(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(std::optional<MedicationOrder> existing, a.order(o.id));
  if (existing) {
    return a.refuse(ErrorCode::kConflict, std::string(kWhatOrder) + ": field 'order': '" + o.id +
                                              "' is already recorded (by " + existing->hospital +
                                              ")");
  }
  o.hospital = a.signer_org->id;
  o.prescriber = a.statement.header.kid;
  o.entry = crypto::sha256(a.statement.bytes);
  o.index = a.index();
  o.ordered_ms = a.time_ms();
  o.status = OrderStatus::kOrdered;
  a.put(order_key(o.id), o.encode());
  a.put(order_step_key(o.entry), OrderStep{o.id, std::string(kStepOrder), ""}.encode());
  a.add_ref("order", o.id);
  a.add_ref("patient", o.patient);
  a.add_ref("org", o.hospital);
  return Status();
}

// The order a later step names; kNotFound when it was never recorded.
Result<MedicationOrder> existing_order(Apply& a, const std::string& id, const char* what) {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<MedicationOrder> o, a.order(id));
  if (!o) {
    return a.refuse(ErrorCode::kNotFound,
                    std::string(what) + ": field 'order': order '" + id + "' is not recorded");
  }
  return std::move(*o);
}

// The chain step `prev` names, if it belongs to `order`.
Result<std::optional<OrderStep>> step_of(Apply& a, const Hash256& prev, const std::string& order) {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Bytes> bytes, a.state.get(order_step_key(prev)));
  if (!bytes) return std::optional<OrderStep>();
  CUSTOS_ASSIGN_OR_RETURN(OrderStep step, OrderStep::decode(*bytes));
  if (step.order != order) return std::optional<OrderStep>();
  return std::optional<OrderStep>(std::move(step));
}

// Refuses a signer from another hospital than the order's.
Status require_order_hospital(const Apply& a, const MedicationOrder& o, const char* what) {
  if (a.signer_org->id == o.hospital) return Status();
  return a.refuse(ErrorCode::kPolicy, std::string(what) + ": order '" + o.id + "' belongs to '" +
                                          o.hospital + "', not to the signer's organisation '" +
                                          a.signer_org->id + "'");
}

// --- Pharmacy verification (pharmacist) ---

constexpr const char* kWhatVerification = "pharmacy verification";

struct Verification {
  std::string order;
  Hash256 prev{};
  std::string outcome;
};

// {"order": id, "prev": entry id of the order, "outcome": verified|rejected,
//  ? "reason": tstr}
Result<Verification> parse_verification(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatVerification));
  Verification v;
  CUSTOS_ASSIGN_OR_RETURN(v.order, p.id("order"));
  CUSTOS_ASSIGN_OR_RETURN(v.prev, read_entry_id(p, "prev"));
  CUSTOS_ASSIGN_OR_RETURN(v.outcome, p.one_of("outcome", kOutcomes));
  CUSTOS_RETURN_IF_ERROR(p.optional_text("reason", kNoteBytesMax).status());
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return v;
}

Status apply_verification(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(Verification v, parse_verification(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(MedicationOrder o, existing_order(a, v.order, kWhatVerification));
  // A hospital's own pharmacist, or any pharmacy organisation (outsourced
  // verification).
  if (a.signer_org->kind == kOrgHospital)
    CUSTOS_RETURN_IF_ERROR(require_order_hospital(a, o, kWhatVerification));
  if (v.prev != o.entry) {
    return a.refuse(ErrorCode::kNotFound,
                    std::string(kWhatVerification) + ": field 'prev': " + short_id(v.prev) +
                        "... is not the entry of order '" + o.id + "' (" + to_hex(o.entry) + ")");
  }
  const Hash256 entry = crypto::sha256(a.statement.bytes);
  if (o.status == OrderStatus::kProgrammed) {
    a.flag(kFlagOutOfOrder, "verification of order '" + o.id + "' recorded after its programming");
  } else {
    o.status = v.outcome == "verified" ? OrderStatus::kVerified : OrderStatus::kRejected;
  }
  o.verification_entry = entry;
  a.put(order_key(o.id), o.encode());
  a.put(order_step_key(entry), OrderStep{o.id, std::string(kStepVerification), v.outcome}.encode());
  a.add_ref("order", o.id);
  a.add_ref("org", a.signer_org->id);
  return Status();
}

// --- Pump programming (nurse) ---

constexpr const char* kWhatProgramming = "pump programming";

struct Programming {
  std::string order;
  Hash256 prev{};
  std::string device;
  std::string drug_library;
};

// {"order": id, "prev": entry id of the verification (or of the order),
//  "device": pump id, "drug_library": version, "drug": tstr,
//  "dose": quantity, "rate": {value, "mL/h"}, "vtbi_ml": number}
Result<Programming> parse_programming(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatProgramming));
  Programming g;
  CUSTOS_ASSIGN_OR_RETURN(g.order, p.id("order"));
  CUSTOS_ASSIGN_OR_RETURN(g.prev, read_entry_id(p, "prev"));
  CUSTOS_ASSIGN_OR_RETURN(g.device, p.id("device"));
  CUSTOS_ASSIGN_OR_RETURN(g.drug_library, p.text("drug_library", kVersionBytesMax));
  CUSTOS_RETURN_IF_ERROR(read_drug(p).status());
  CUSTOS_RETURN_IF_ERROR(read_quantity(p, "dose", kDoseValueMax, false).status());
  CUSTOS_RETURN_IF_ERROR(read_quantity(p, "rate", kRateMlPerHourMax, true).status());
  CUSTOS_RETURN_IF_ERROR(read_volume(p).status());
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return g;
}

// The pump being programmed: registered, in service, held by the hospital.
Result<Device> programmed_pump(Apply& a, const std::string& id, const std::string& hospital) {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> d, a.device(id));
  if (!d) {
    return a.refuse(ErrorCode::kNotFound, std::string(kWhatProgramming) + ": field 'device': '" +
                                              id + "' is not registered");
  }
  if (d->holder != hospital) {
    return a.refuse(ErrorCode::kPolicy, std::string(kWhatProgramming) + ": field 'device': '" + id +
                                            "' is held by '" + d->holder + "', not by '" +
                                            hospital + "'");
  }
  if (d->status != DeviceStatus::kActive) {
    return a.refuse(ErrorCode::kConflict, std::string(kWhatProgramming) + ": field 'device': '" +
                                              id + "' is decommissioned");
  }
  return std::move(*d);
}

// Accepted, but noteworthy: no verification, a rejected order, an outdated
// drug library.
Status flag_programming(Apply& a, const MedicationOrder& o, const OrderStep& prev,
                        const Programming& g) {
  if (prev.kind == kStepOrder) {
    a.flag(kFlagOutOfOrder, "order '" + o.id + "' programmed without pharmacy verification");
  } else if (prev.outcome == "rejected") {
    a.flag(kFlagOutOfOrder, "order '" + o.id +
                                "' programmed after the pharmacy rejected it (prev " +
                                short_id(g.prev) + "...)");
  }
  CUSTOS_ASSIGN_OR_RETURN(std::optional<DrugLibrary> current, a.drug_library(o.hospital));
  if (current && current->version != g.drug_library) {
    a.flag(kFlagDrugLibraryOutdated, "pump " + g.device + " programmed with " + g.drug_library +
                                         "; " + o.hospital + "'s current library is " +
                                         current->version);
  }
  return Status();
}

Status apply_programming(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(Programming g, parse_programming(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(MedicationOrder o, existing_order(a, g.order, kWhatProgramming));
  CUSTOS_RETURN_IF_ERROR(require_order_hospital(a, o, kWhatProgramming));
  CUSTOS_ASSIGN_OR_RETURN(std::optional<OrderStep> prev, step_of(a, g.prev, o.id));
  if (!prev || prev->kind == kStepProgramming) {
    return a.refuse(ErrorCode::kNotFound, std::string(kWhatProgramming) +
                                              ": field 'prev': " + short_id(g.prev) +
                                              "... is neither the entry of order '" + o.id +
                                              "' nor of one of its verifications");
  }
  CUSTOS_ASSIGN_OR_RETURN(Device pump, programmed_pump(a, g.device, o.hospital));
  CUSTOS_RETURN_IF_ERROR(flag_programming(a, o, *prev, g));
  const Hash256 entry = crypto::sha256(a.statement.bytes);
  o.status = OrderStatus::kProgrammed;
  o.programming_entry = entry;
  o.device = pump.id;
  a.put(order_key(o.id), o.encode());
  a.put(order_step_key(entry), OrderStep{o.id, std::string(kStepProgramming), ""}.encode());
  a.add_ref("order", o.id);
  a.add_ref("device", pump.id);
  a.add_ref("org", o.hospital);
  return Status();
}

constexpr TypeRule kInfusionRules[] = {
    {kTypeMedicationOrder, kWhatOrder, kRolePrescriber, kOrgHospital, check_by_parsing<parse_order>,
     apply_order},
    {kTypePharmacyVerification, kWhatVerification, kRolePharmacist, kOrgHospital | kOrgPharmacy,
     check_by_parsing<parse_verification>, apply_verification},
    {kTypePumpProgramming, kWhatProgramming, kRoleNurse, kOrgHospital,
     check_by_parsing<parse_programming>, apply_programming},
};

}  // namespace

std::span<const TypeRule> infusion_rules() {
  return kInfusionRules;
}

}  // namespace custos::domain
