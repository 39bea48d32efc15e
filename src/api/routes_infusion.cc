// The infusion chain over HTTP (docs/api.md, "Infusion traceability"):
//   GET /v1/orders/{id}                  the order record and its status
//   GET /v1/orders/{id}/report           the incident report (?receipts=false)
//   GET /v1/patients/{pseudonym}/orders  a patient's orders, paged
#include "api/domain_routes.h"
#include "api/http_util.h"
#include "codec/cbor_json.h"
#include "domain/incident.h"

namespace custos::api {

using nlohmann::json;

namespace {

json quantity_json(const domain::Quantity& q) {
  return {{"value", q.value}, {"unit", q.unit}};
}

json order_json(const domain::MedicationOrder& o) {
  json j = {{"id", o.id},
            {"hospital", o.hospital},
            {"patient", o.patient},
            {"drug", o.drug},
            {"dose", quantity_json(o.dose)},
            {"rate", quantity_json(o.rate)},
            {"vtbi_ml", o.vtbi_ml},
            {"route", o.route},
            {"care_area", o.care_area},
            {"prescriber", to_hex(o.prescriber)},
            {"entry", to_hex(o.entry)},
            {"index", o.index},
            {"ordered_ms", o.ordered_ms},
            {"ordered_at", rfc3339(o.ordered_ms)},
            {"record_status", domain::order_status_name(o.status)}};
  if (!o.drug_code.empty()) j["drug_code"] = o.drug_code;
  if (o.verification_entry != Hash256{}) j["verification_entry"] = to_hex(o.verification_entry);
  if (o.programming_entry != Hash256{}) j["programming_entry"] = to_hex(o.programming_entry);
  if (!o.device.empty()) j["device"] = o.device;
  return j;
}

json signer_json(const domain::StepSigner& s) {
  json j = {{"kid", to_hex(s.kid)}, {"name", s.name}, {"roles", s.roles}, {"org", s.org}};
  if (!s.device.empty()) j["device"] = s.device;
  if (s.revoked_index) {
    j["revoked"] = {{"index", *s.revoked_index},
                    {"ms", s.revoked_ms},
                    {"at", rfc3339(s.revoked_ms)},
                    {"how", s.revoked_how}};
  }
  return j;
}

json firmware_json(const domain::FirmwareAt& f) {
  return {{"version", f.version},
          {"image_sha256", to_hex(f.image_sha256)},
          {"since_entry", to_hex(f.since_entry)},
          {"since_index", f.since_index},
          {"since_ms", f.since_ms},
          {"since_at", rfc3339(f.since_ms)}};
}

json step_json(const domain::Step& s) {
  json j = {{"step", s.number},
            {"kind", domain::step_kind_name(s.kind)},
            {"entry", to_hex(s.entry)},
            {"index", s.index},
            {"registered_ms", s.registered_ms},
            {"registered_at", rfc3339(s.registered_ms)},
            {"issued_at", s.issued_at_s},
            {"sequence", s.sequence},
            {"signer", signer_json(s.signer)},
            {"payload", cbor::to_json(s.payload)},
            {"statement_base64", base64_encode(s.statement)}};
  if (!s.event.empty()) j["event"] = s.event;
  if (s.gap && s.gap->gap()) j["sequence_gap"] = gap_json(*s.gap);
  if (!s.device.empty()) j["device"] = s.device;
  if (s.firmware) j["firmware"] = firmware_json(*s.firmware);
  if (!s.drug_library.empty()) j["drug_library"] = s.drug_library;
  if (!s.flags.empty()) j["flags"] = s.flags;
  if (!s.receipt.empty()) j["receipt_base64"] = base64_encode(s.receipt);
  if (!s.receipt_error.empty()) j["receipt_error"] = s.receipt_error;
  return j;
}

json deviation_json(const domain::Deviation& d) {
  json j = {{"code", d.code},
            {"step", d.step},
            {"party", {{"role", d.party.role}, {"name", d.party.name}, {"org", d.party.org}}},
            {"detail", d.detail}};
  if (!d.about.empty()) j["about"] = d.about;
  if (!d.timing.empty()) j["timing"] = d.timing;
  return j;
}

json report_json(const domain::IncidentReport& r) {
  json steps = json::array();
  for (const auto& s : r.steps) steps.push_back(step_json(s));
  json deviations = json::array();
  for (const auto& d : r.deviations) deviations.push_back(deviation_json(d));
  return {{"order_id", r.order_id},   {"order", r.order ? order_json(*r.order) : json(nullptr)},
          {"status", r.status},       {"log_size", r.log_size},
          {"truncated", r.truncated}, {"value_tolerance", domain::kValueTolerance},
          {"steps", steps},           {"deviations", deviations}};
}

Result<bool> bool_param(const Request& r, const char* name, bool fallback) {
  const std::string* v = query_param(r, name);
  if (!v) return fallback;
  if (*v == "true" || *v == "1") return true;
  if (*v == "false" || *v == "0") return false;
  return error(ErrorCode::kInvalidArgument, std::string("'") + name + "' must be true or false");
}

Response get_order(const ledger::Ledger& l, const std::string& id) {
  domain::ReportOptions options;
  options.receipts = false;
  auto r = domain::incident_report(l, id, options);
  if (!r.ok()) return problem(r.status());
  if (!r->order) return problem(error(ErrorCode::kNotFound, "order '" + id + "' is not recorded"));
  return json_response({{"order", order_json(*r->order)},
                        {"status", r->status},
                        {"steps", r->steps.size()},
                        {"deviations", r->deviations.size()},
                        {"log_size", r->log_size}});
}

Response get_report(const ledger::Ledger& l, const Request& req, const std::string& id) {
  auto receipts = bool_param(req, "receipts", true);
  if (!receipts.ok()) return problem(receipts.status());
  domain::ReportOptions options;
  options.receipts = *receipts;
  auto r = domain::incident_report(l, id, options);
  if (!r.ok()) return problem(r.status());
  return json_response(report_json(*r));
}

Response get_patient_orders(const ledger::Ledger& l, const Request& req,
                            const std::string& pseudonym) {
  uint64_t cursor = 0;
  uint64_t limit = domain::kPatientOrdersPageMax;
  if (const std::string* c = query_param(req, "cursor")) {
    auto v = parse_uint(*c, "cursor");
    if (!v.ok()) return problem(v.status());
    cursor = *v;
  }
  if (const std::string* lim = query_param(req, "limit")) {
    auto v = parse_uint(*lim, "limit");
    if (!v.ok()) return problem(v.status());
    if (*v < 1 || *v > domain::kPatientOrdersPageMax) {
      return problem(
          error(ErrorCode::kInvalidArgument,
                "'limit' must be 1 to " + std::to_string(domain::kPatientOrdersPageMax)));
    }
    limit = *v;
  }
  auto page = domain::patient_orders(l, pseudonym, cursor, limit);
  if (!page.ok()) return problem(page.status());
  json orders = json::array();
  for (const auto& o : page->orders) orders.push_back(order_json(o));
  return json_response({{"orders", orders},
                        {"next_cursor", page->next_cursor ? json(std::to_string(*page->next_cursor))
                                                          : json(nullptr)}});
}

}  // namespace

std::optional<Response> route_infusion(node::Node& node, const Request& r,
                                       const std::vector<std::string>& parts) {
  if (parts.size() < 2 || (parts[1] != "orders" && parts[1] != "patients")) return std::nullopt;
  const bool is_order = parts[1] == "orders" && (parts.size() == 3 || parts.size() == 4);
  const bool is_report = is_order && parts.size() == 4 && parts[3] == "report";
  const bool is_patient = parts[1] == "patients" && parts.size() == 4 && parts[3] == "orders";
  if (!(is_order && (parts.size() == 3 || is_report)) && !is_patient) return std::nullopt;
  if (r.method != "GET" && r.method != "HEAD")
    return problem(405, "method-not-allowed", r.method + " is not allowed on " + r.path);
  const ledger::Ledger& l = node.ledger();
  if (is_patient) return get_patient_orders(l, r, parts[2]);
  if (is_report) return get_report(l, r, parts[2]);
  return get_order(l, parts[2]);
}

}  // namespace custos::api
