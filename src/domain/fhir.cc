#include "domain/fhir.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "codec/cbor.h"
#include "core/time.h"
#include "crypto/hash.h"
#include "ledger/policy.h"

namespace custos::domain::fhir {

namespace {

// Code systems.
constexpr const char* kAuditEventType = "http://terminology.hl7.org/CodeSystem/audit-event-type";
constexpr const char* kRestfulInteraction = "http://hl7.org/fhir/restful-interaction";
constexpr const char* kDicom = "http://dicom.nema.org/resources/ontology/DCM";
constexpr const char* kParticipationType =
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
constexpr const char* kEntityType = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
constexpr const char* kObjectRole = "http://terminology.hl7.org/CodeSystem/object-role";
constexpr const char* kSourceType = "http://terminology.hl7.org/CodeSystem/security-source-type";
constexpr const char* kActReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
constexpr const char* kDataOperation = "http://terminology.hl7.org/CodeSystem/v3-DataOperation";
constexpr const char* kProvenanceParticipant =
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
constexpr const char* kSignatureType = "urn:iso-astm:E1762-95:2013";
constexpr const char* kIeee11073 = "urn:iso:std:iso:11073:10101";
constexpr const char* kUcum = "http://unitsofmeasure.org";
constexpr size_t kFhirIdBytesMax = 64;

Json coding(const char* system, std::string_view code, std::string_view display = {}) {
  Json c = {{"system", system}, {"code", std::string(code)}};
  if (!display.empty()) c["display"] = std::string(display);
  return c;
}

Json concept_of(const char* system, std::string_view code, std::string_view display = {}) {
  return {{"coding", Json::array({coding(system, code, display)})}};
}

// A logical reference: no resource to point at, an identifier instead.
Json logical(const std::string& system, std::string_view value, std::string_view display = {}) {
  Json r = {{"identifier", {{"system", system}, {"value", std::string(value)}}}};
  if (!display.empty()) r["display"] = std::string(display);
  return r;
}

Json device_ref(std::string_view device) {
  return {{"reference", "Device/" + resource_id(device)}, {"display", std::string(device)}};
}

Json signer_ref(const Signer& s) {
  if (!s.device.empty()) return device_ref(s.device);
  return logical(kSystemKid, to_hex(s.kid), s.name);
}

Json org_ref(std::string_view org) {
  return logical(kSystemOrg, org, org);
}

Json patient_ref(std::string_view pseudonym) {
  return logical(kSystemPseudonym, pseudonym);
}

Json entry_ref(const ledger::EntryInfo& e) {
  return logical(kSystemEntry, to_hex(e.id), e.header.content_type);
}

Json quantity(double value, std::string_view unit) {
  return {{"value", value},
          {"unit", std::string(unit)},
          {"system", kUcum},
          {"code", std::string(unit)}};
}

// The statement's payload as CBOR (a null value when it is not CBOR).
cbor::Value payload_of(const ledger::EntryInfo& e) {
  auto st = cose::parse_statement(e.statement);
  if (!st.ok()) return cbor::Value::null();
  auto v = cbor::decode(st->payload());
  return v.ok() ? std::move(v).value() : cbor::Value::null();
}

std::string text_field(const cbor::Value& map, std::string_view field) {
  const cbor::Value* v = map.find(field);
  return v && v->is(cbor::Type::kText) ? v->as_text() : std::string();
}

std::optional<double> number_field(const cbor::Value& map, std::string_view field) {
  const cbor::Value* v = map.find(field);
  if (v && v->is(cbor::Type::kFloat)) return v->as_float();
  if (v && v->is(cbor::Type::kUnsigned)) return static_cast<double>(v->as_uint());
  return std::nullopt;
}

std::optional<Quantity> quantity_field(const cbor::Value& map, std::string_view field) {
  const cbor::Value* q = map.find(field);
  if (!q || !q->is(cbor::Type::kMap)) return std::nullopt;
  auto value = number_field(*q, "value");
  std::string unit = text_field(*q, "unit");
  if (!value || unit.empty()) return std::nullopt;
  return Quantity{*value, unit};
}

// "device:pump-17" -> {"device", "pump-17"}.
std::pair<std::string, std::string> split_ref(const std::string& ref) {
  const size_t colon = ref.find(':');
  if (colon == std::string::npos) return {"", ref};
  return {ref.substr(0, colon), ref.substr(colon + 1)};
}

// The entry's refs as (kind, id), the per-device sub-indexes
// ("device-firmware:", "device-library:") folded into their device, each once.
std::vector<std::pair<std::string, std::string>> refs_of(const ledger::EntryInfo& e) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : e.refs) {
    auto kind_id = split_ref(r);
    if (kind_id.first.rfind("device-", 0) == 0) kind_id.first = "device";
    if (std::find(out.begin(), out.end(), kind_id) == out.end()) out.push_back(kind_id);
  }
  return out;
}

// --- AuditEvent ---

struct Action {
  const char* code;         // AuditEvent.action
  const char* interaction;  // restful-interaction
  const char* user_type;    // the user agent's v3-ParticipationType
  const char* user_display;
  const char* operation;  // v3-DataOperation for Provenance.activity
};

Action action_of(std::string_view content_type) {
  if (content_type == kTypeRecordAccess)
    return {"R", "read", "IRCP", "information recipient", "READ"};
  if (content_type == kTypeRecordErasure) return {"D", "delete", "AUT", "author", "DELETE"};
  return {"C", "create", "AUT", "author", "CREATE"};
}

Json entity(Json what, const char* type, const char* type_display, const char* role,
            const char* role_display) {
  return {{"what", std::move(what)},
          {"type", coding(kEntityType, type, type_display)},
          {"role", coding(kObjectRole, role, role_display)}};
}

Json system_object(Json what) {
  return entity(std::move(what), "2", "System Object", "4", "Domain Resource");
}

// Entities for the entry's refs: the patient as a person, devices as
// Device references, the rest as custos refs (organisations are agents).
void add_ref_entities(const ledger::EntryInfo& e, Json& entities) {
  for (const auto& [kind, id] : refs_of(e)) {
    if (kind == "patient") {
      entities.push_back(entity(patient_ref(id), "1", "Person", "1", "Patient"));
    } else if (kind == "device") {
      entities.push_back(system_object(device_ref(id)));
    } else if (kind != "org") {
      entities.push_back(system_object(logical(kSystemRef, kind + ":" + id)));
    }
  }
}

Json agent(Json type, Json who, bool requestor) {
  return {{"type", std::move(type)}, {"who", std::move(who)}, {"requestor", requestor}};
}

}  // namespace

std::string resource_id(std::string_view id) {
  const bool fits =
      !id.empty() && id.size() <= kFhirIdBytesMax && std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.';
      });
  return fits ? std::string(id) : to_hex(crypto::sha256(as_view(id)));
}

std::string instant(uint64_t ms) {
  return rfc3339_ms(ms);
}

Json device(const Device& d, std::string_view maker_name, std::string_view holder_name) {
  Json j = {{"resourceType", "Device"},
            {"id", resource_id(d.id)},
            {"identifier", Json::array({{{"system", kSystemDevice}, {"value", d.id}}})},
            {"udiCarrier", Json::array({{{"deviceIdentifier", d.udi.di},
                                         {"issuer", kGs1DiIssuer},
                                         {"carrierHRF", d.udi.hrf()}}})},
            {"status", d.status == DeviceStatus::kActive ? "active" : "inactive"},
            {"manufacturer", maker_name.empty() ? d.maker : std::string(maker_name)},
            {"serialNumber", d.udi.serial},
            {"modelNumber", d.model},
            {"deviceName", Json::array({{{"name", d.model}, {"type", "model-name"}}})},
            {"type", {{"text", d.device_class}}},
            {"owner", logical(kSystemOrg, d.holder,
                              holder_name.empty() ? d.holder : std::string(holder_name))}};
  if (!d.udi.manufactured.empty()) j["manufactureDate"] = d.udi.manufactured;
  if (!d.udi.expires.empty()) j["expirationDate"] = d.udi.expires;
  if (!d.udi.lot.empty()) j["lotNumber"] = d.udi.lot;
  if (d.firmware) {
    j["version"] = Json::array({{{"type", concept_of(kIeee11073, "531976", "MDC_ID_PROD_SPEC_FW")},
                                 {"value", d.firmware->version}}});
    j["property"] =
        Json::array({{{"type", {{"text", "firmware image SHA-256"}}},
                      {"valueCode", Json::array({{{"text", to_hex(d.firmware->image_sha256)}}})}}});
  }
  if (!d.care_area.empty() || !d.location.empty()) {
    std::string where = d.care_area;
    if (!d.location.empty()) where += (where.empty() ? "" : ", ") + d.location;
    j["location"] = {{"display", where}};
  }
  return j;
}

Json audit_event(const ledger::EntryInfo& e, const Signer& s, const Source& src) {
  const Action a = action_of(e.header.content_type);
  const cbor::Value payload = payload_of(e);
  const bool access = e.header.content_type == kTypeRecordAccess;
  const std::string purpose = access ? text_field(payload, "purpose") : "";

  Json user_who = signer_ref(s);
  if (access && !text_field(payload, "who").empty()) {
    user_who = logical(kSystemUserPrefix + (s.org.empty() ? std::string("none") : s.org),
                       text_field(payload, "who"));
  }
  Json user =
      agent(concept_of(kParticipationType, a.user_type, a.user_display), std::move(user_who), true);
  if (!purpose.empty()) user["purposeOfUse"] = Json::array({concept_of(kActReason, purpose)});
  Json agents = Json::array(
      {std::move(user), agent(concept_of(kDicom, "110153", "Source Role ID"), signer_ref(s), false),
       agent(concept_of(kDicom, "110152", "Destination Role ID"),
             logical(kSystemNode, src.node, src.node), false)});

  Json entities = Json::array({system_object(entry_ref(e))});
  add_ref_entities(e, entities);
  if (access) {
    const std::string record = text_field(payload, "patient") + "/" + text_field(payload, "record");
    entities.push_back(system_object(logical(kSystemRecord, record)));
  }

  Json j = {{"resourceType", "AuditEvent"},
            {"id", to_hex(e.id)},
            {"type", coding(kAuditEventType, "rest", "Restful Operation")},
            {"subtype", Json::array({coding(kRestfulInteraction, a.interaction, a.interaction)})},
            {"action", a.code},
            {"recorded", instant(e.registered_ms)},
            {"outcome", "0"},
            {"agent", std::move(agents)},
            {"source",
             {{"site", src.consortium},
              {"observer", logical(kSystemNode, src.node, src.node)},
              {"type", Json::array({coding(kSourceType, "4", "Application Server")})}}},
            {"entity", std::move(entities)}};
  if (!purpose.empty()) j["purposeOfEvent"] = Json::array({concept_of(kActReason, purpose)});
  return j;
}

Json provenance(const ledger::EntryInfo& e, const Signer& s) {
  Json targets = Json::array();
  for (const auto& [kind, id] : refs_of(e)) {
    if (kind == "device") {
      targets.push_back(device_ref(id));
    } else if (kind == "patient") {
      targets.push_back(patient_ref(id));
    } else if (kind == "order") {
      targets.push_back({{"reference", "MedicationRequest/" + resource_id(id)}});
    } else if (kind != "org") {
      targets.push_back(logical(kSystemRef, kind + ":" + id));
    }
  }
  if (targets.empty()) targets.push_back(entry_ref(e));  // about nothing else: itself
  Json author = {{"type", concept_of(kProvenanceParticipant, "author", "Author")},
                 {"who", signer_ref(s)}};
  if (!s.org.empty()) author["onBehalfOf"] = org_ref(s.org);
  const std::string signed_at = instant(e.header.issued_at_s * 1000);
  return {{"resourceType", "Provenance"},
          {"id", to_hex(e.id)},
          {"target", std::move(targets)},
          {"occurredDateTime", signed_at},
          {"recorded", instant(e.registered_ms)},
          {"activity", concept_of(kDataOperation, action_of(e.header.content_type).operation)},
          {"agent", Json::array({std::move(author)})},
          {"entity", Json::array({{{"role", "source"}, {"what", entry_ref(e)}}})},
          {"signature",
           Json::array({{{"type", Json::array({coding(kSignatureType, "1.2.840.10065.1.12.1.1",
                                                      "Author's Signature")})},
                         {"when", signed_at},
                         {"who", signer_ref(s)},
                         {"sigFormat", "application/cose"},
                         {"data", base64_encode(e.statement)}}})}};
}

namespace {

const char* request_status(OrderStatus s) {
  switch (s) {
    case OrderStatus::kRejected:
      return "cancelled";
    case OrderStatus::kEnded:
      return "completed";
    case OrderStatus::kOrdered:
    case OrderStatus::kVerified:
    case OrderStatus::kProgrammed:
    case OrderStatus::kRunning:
      return "active";
  }
  return "unknown";
}

// A dose whose unit is per time ("mg/h") is a rate.
bool is_rate(const Quantity& q) {
  return q.unit.find('/') != std::string::npos;
}

// dosage / doseAndRate content from a dose and a rate (e.g. mL/h); a dose
// per time takes the rate's place.
void add_dose_and_rate(Json& j, const char* dose_key, const char* rate_key, const Quantity& dose,
                       const std::optional<Quantity>& rate) {
  if (!dose.unit.empty() && !is_rate(dose)) j[dose_key] = quantity(dose.value, dose.unit);
  if (!dose.unit.empty() && is_rate(dose)) {
    j[rate_key] = quantity(dose.value, dose.unit);
  } else if (rate) {
    j[rate_key] = quantity(rate->value, rate->unit);
  }
}

std::optional<Quantity> given(const Quantity& q) {
  return q.unit.empty() ? std::nullopt : std::optional<Quantity>(q);
}

// What the infusion steps say, read tolerantly: any step may be missing.
struct Course {
  const char* status = nullptr;  // from the last event that decides it
  std::optional<uint64_t> start_ms, end_ms, programmed_ms;
  std::optional<double> rate_ml_h;
  std::optional<Quantity> dose;
  std::string nurse_name;
  std::optional<Signer> nurse;
  std::string device;
};

void read_step(const Step& step, Course& c) {
  const cbor::Value p = payload_of(step.entry);
  const bool programming = step.entry.header.content_type == kTypePumpProgramming;
  const std::string kind = programming ? "programming" : text_field(p, "event");
  const uint64_t at_ms = step.entry.header.issued_at_s * 1000;  // when the signer says it happened
  if (auto r = number_field(p, "rate_ml_h"); r && (kind == "programming" || kind == "rate-change"))
    c.rate_ml_h = r;
  if (auto d = quantity_field(p, "dose")) c.dose = d;
  if (programming) {
    c.nurse = step.signer;
    if (!text_field(p, "device").empty()) c.device = text_field(p, "device");
  }
  if (!step.signer.device.empty()) c.device = step.signer.device;
  if (kind == "programming") {
    if (!c.programmed_ms) c.programmed_ms = at_ms;
  } else if (kind == "start" || kind == "restart" || kind == "rate-change" || kind == "bolus") {
    if (!c.start_ms) c.start_ms = at_ms;
    c.status = "in-progress";
  } else if (kind == "pause" || kind == "hard-limit-stop") {
    c.status = "on-hold";
  } else if (kind == "stop") {
    c.status = "stopped";
    c.end_ms = at_ms;
  } else if (kind == "completion") {
    c.status = "completed";
    c.end_ms = at_ms;
  }
}

const char* administration_status(const MedicationOrder& o, const Course& c) {
  if (c.status) return c.status;
  if (o.status == OrderStatus::kRejected) return "not-done";
  if (o.status == OrderStatus::kEnded) return "completed";
  if (c.programmed_ms || o.status == OrderStatus::kRunning) return "in-progress";
  return "unknown";
}

}  // namespace

Json medication_request(const MedicationOrder& o, const Signer& prescriber) {
  Json dose_and_rate = Json::object();
  add_dose_and_rate(dose_and_rate, "doseQuantity", "rateQuantity", o.dose, given(o.rate));
  Json dosage = {{"text", o.drug}};
  if (!dose_and_rate.empty()) dosage["doseAndRate"] = Json::array({dose_and_rate});
  Json j = {{"resourceType", "MedicationRequest"},
            {"id", resource_id(o.id)},
            {"identifier", Json::array({{{"system", kSystemOrder}, {"value", o.id}}})},
            {"status", request_status(o.status)},
            {"intent", "order"},
            {"medicationCodeableConcept", {{"text", o.drug}}},
            {"subject", patient_ref(o.patient)},
            {"authoredOn", instant(o.ordered_ms)},
            {"requester", signer_ref(prescriber)},
            {"dosageInstruction", Json::array({std::move(dosage)})}};
  if (o.vtbi_ml > 0) j["dispenseRequest"] = {{"quantity", quantity(o.vtbi_ml, "mL")}};
  if (!o.hospital.empty()) j["requester"]["display"] = prescriber.name + " (" + o.hospital + ")";
  return j;
}

Json medication_administration(const MedicationOrder& o, const std::vector<Step>& steps) {
  Course c;
  c.device = o.device;
  for (const Step& s : steps) read_step(s, c);
  Json j = {{"resourceType", "MedicationAdministration"},
            {"id", resource_id(o.id)},
            {"identifier", Json::array({{{"system", kSystemOrder}, {"value", o.id}}})},
            {"status", administration_status(o, c)},
            {"medicationCodeableConcept", {{"text", o.drug}}},
            {"subject", patient_ref(o.patient)},
            {"request", {{"reference", "MedicationRequest/" + resource_id(o.id)}}}};
  if (c.start_ms) {
    Json period = {{"start", instant(*c.start_ms)}};
    if (c.end_ms) period["end"] = instant(*c.end_ms);
    j["effectivePeriod"] = std::move(period);
  } else {
    j["effectiveDateTime"] = instant(c.programmed_ms.value_or(o.ordered_ms));
  }
  Json performers = Json::array();
  if (c.nurse) performers.push_back({{"actor", signer_ref(*c.nurse)}});
  if (!c.device.empty()) {
    performers.push_back({{"actor", device_ref(c.device)}});
    j["device"] = Json::array({device_ref(c.device)});
  }
  if (!performers.empty()) j["performer"] = std::move(performers);
  Json dosage = Json::object();
  add_dose_and_rate(
      dosage, "dose", "rateQuantity", c.dose.value_or(o.dose),
      c.rate_ml_h ? std::optional<Quantity>(Quantity{*c.rate_ml_h, "mL/h"}) : given(o.rate));
  if (!dosage.empty()) j["dosage"] = std::move(dosage);
  if (!steps.empty()) {
    Json history = Json::array();
    for (const Step& s : steps)
      history.push_back({{"reference", "Provenance/" + to_hex(s.entry.id)}});
    j["eventHistory"] = std::move(history);
  }
  return j;
}

Json searchset(const std::vector<Json>& resources, const std::string& self,
               const std::optional<std::string>& next) {
  Json links = Json::array({{{"relation", "self"}, {"url", self}}});
  if (next) links.push_back({{"relation", "next"}, {"url", *next}});
  Json entries = Json::array();
  for (const Json& r : resources)
    entries.push_back({{"resource", r}, {"search", {{"mode", "match"}}}});
  return {{"resourceType", "Bundle"},
          {"type", "searchset"},
          {"link", std::move(links)},
          {"entry", std::move(entries)}};
}

}  // namespace custos::domain::fhir
