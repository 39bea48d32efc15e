// FHIR R4 exports (docs/api.md, "FHIR"), JSON only, under /fhir/R4:
//   GET metadata                                 CapabilityStatement
//   GET Device/{device id}
//   GET AuditEvent/{entry id}, AuditEvent?patient=&date=&_count=&_cursor=
//   GET Provenance/{entry id}, Provenance?target=&_count=&_cursor=
//   GET MedicationRequest/{order id}, MedicationAdministration/{order id}
// The resources are built by domain/fhir.h from what this node's ledger
// holds; errors are RFC 9457 problems like everywhere else in the API.
#include "api/domain_routes.h"
#include "api/http_util.h"
#include "domain/fhir.h"
#include "domain/model.h"
#include "domain/payload.h"

namespace custos::api {

using domain::fhir::Json;

namespace {

// Entries read for one MedicationAdministration (the order's steps).
constexpr size_t kInfusionStepsMax = 1000;

Response fhir_response(const Json& body) {
  Response r = json_response(body);
  r.content_type = domain::fhir::kMediaTypeFhirJson;
  return r;
}

Response not_found(const std::string& what) {
  return problem(error(ErrorCode::kNotFound, what));
}

// --- What the ledger knows ---

domain::fhir::Signer signer_of(const ledger::Ledger& l, const Hash256& kid) {
  domain::fhir::Signer s;
  s.kid = kid;
  if (auto k = l.key(kid); k.ok()) {
    s.name = k->name;
    s.org = k->org;
  }
  if (auto device = l.rule_record(domain::device_kid_key(kid)); device.ok())
    s.device.assign(device->begin(), device->end());
  return s;
}

domain::fhir::Source source_of(const ledger::Ledger& l) {
  return {l.node_name(), l.genesis().consortium};
}

std::string org_name(const ledger::Ledger& l, const std::string& id) {
  auto bytes = l.rule_record(domain::org_key(id));
  if (!bytes.ok()) return id;
  auto org = domain::Org::decode(*bytes);
  return org.ok() ? org->name : id;
}

template <typename T>
Result<T> record(const ledger::Ledger& l, const Bytes& key, const std::string& what) {
  auto bytes = l.rule_record(key);
  if (!bytes.ok()) {
    if (bytes.status().code() == ErrorCode::kNotFound)
      return error(ErrorCode::kNotFound, what + " is not on the ledger");
    return bytes.status();
  }
  return T::decode(*bytes);
}

Result<ledger::EntryInfo> entry_of(const ledger::Ledger& l, const std::string& id_hex) {
  auto id = hash_from_hex(id_hex);
  if (!id.ok()) return error(ErrorCode::kInvalidArgument, "an entry id is 64 hex characters");
  return l.entry(*id);
}

// --- Search parameters ---

// FHIR date search (prefix eq|ge|gt|le|lt, then YYYY-MM-DD or a UTC
// dateTime) narrowed into the query's [from_ms, to_ms).
Status apply_date(const std::string& param, ledger::Query& q) {
  std::string prefix = "eq";
  std::string value = param;
  if (param.size() > 2 && std::isalpha(static_cast<unsigned char>(param[0]))) {
    prefix = param.substr(0, 2);
    value = param.substr(2);
  }
  const bool day = value.size() == 10;
  CUSTOS_ASSIGN_OR_RETURN(uint64_t start,
                          parse_time_ms(day ? value + "T00:00:00Z" : value, "date"));
  const uint64_t end = start + (day ? 86400000 : 1);  // the value covers [start, end)
  auto narrow_from = [&](uint64_t t) { q.from_ms = std::max(q.from_ms.value_or(0), t); };
  auto narrow_to = [&](uint64_t t) { q.to_ms = std::min(q.to_ms.value_or(UINT64_MAX), t); };
  if (prefix == "eq") {
    narrow_from(start);
    narrow_to(end);
  } else if (prefix == "ge") {
    narrow_from(start);
  } else if (prefix == "gt") {
    narrow_from(end);
  } else if (prefix == "le") {
    narrow_to(end);
  } else if (prefix == "lt") {
    narrow_to(start);
  } else {
    return error(ErrorCode::kInvalidArgument,
                 "'date' takes the prefixes eq, ge, gt, le, lt, not '" + prefix + "'");
  }
  return Status();
}

Status apply_paging(const Request& r, ledger::Query& q) {
  q.limit = limits::kQueryPageEntriesDefault;
  if (auto* v = query_param(r, "_count")) {
    CUSTOS_ASSIGN_OR_RETURN(uint64_t n, parse_uint(*v, "_count"));
    if (n == 0 || n > limits::kQueryPageEntriesMax) {
      return error(ErrorCode::kInvalidArgument, "'_count' must be between 1 and " +
                                                    std::to_string(limits::kQueryPageEntriesMax));
    }
    q.limit = n;
  }
  if (auto* v = query_param(r, "_cursor")) {
    CUSTOS_ASSIGN_OR_RETURN(q.cursor, parse_uint(*v, "_cursor"));
  }
  return Status();
}

// The request's URL again, with _cursor replaced (for Bundle.link).
std::string page_url(const Request& r, std::optional<uint64_t> cursor) {
  std::string url = r.path;
  char sep = '?';
  for (const auto& [k, v] : r.query) {
    if (k == "_cursor") continue;
    url += sep + percent_encode(k) + "=" + percent_encode(v);
    sep = '&';
  }
  if (cursor) url += sep + std::string("_cursor=") + std::to_string(*cursor);
  return url;
}

template <typename Build>
Response search(const ledger::Ledger& l, const Request& r, const ledger::Query& q, Build build) {
  auto page = l.query(q);
  if (!page.ok()) return problem(page.status());
  std::vector<Json> resources;
  for (const auto& e : page->entries) resources.push_back(build(e));
  std::optional<std::string> next;
  if (page->next_cursor) next = page_url(r, page->next_cursor);
  return fhir_response(domain::fhir::searchset(resources, page_url(r, std::nullopt), next));
}

// --- Resources ---

Response get_device(const ledger::Ledger& l, const std::string& id) {
  auto d = record<domain::Device>(l, domain::device_key(id), "device '" + id + "'");
  if (!d.ok()) return problem(d.status());
  return fhir_response(domain::fhir::device(*d, org_name(l, d->maker), org_name(l, d->holder)));
}

Response audit_events(const ledger::Ledger& l, const Request& r) {
  ledger::Query q;
  if (auto* p = query_param(r, "patient")) {
    if (Status s = domain::check_pseudonym(*p); !s.ok())
      return problem(error(ErrorCode::kInvalidArgument, "'patient': " + s.message()));
    q.ref = domain::ref("patient", *p);
  }
  for (auto [it, end] = r.query.equal_range("date"); it != end; ++it) {
    if (Status s = apply_date(it->second, q); !s.ok()) return problem(s);
  }
  if (Status s = apply_paging(r, q); !s.ok()) return problem(s);
  const auto src = source_of(l);
  return search(l, r, q, [&](const ledger::EntryInfo& e) {
    return domain::fhir::audit_event(e, signer_of(l, e.header.kid), src);
  });
}

// Provenance?target=: Device/{id}, MedicationRequest/{id} or a custos ref
// such as patient:pseudonym:… or order:o-1.
Response provenances(const ledger::Ledger& l, const Request& r) {
  const std::string* target = query_param(r, "target");
  if (!target) {
    return problem(error(ErrorCode::kInvalidArgument,
                         "Provenance search needs 'target' (Device/{id}, MedicationRequest/{id} "
                         "or a custos ref like patient:pseudonym:…)"));
  }
  ledger::Query q;
  if (target->rfind("Device/", 0) == 0) {
    q.ref = domain::ref("device", target->substr(7));
  } else if (target->rfind("MedicationRequest/", 0) == 0) {
    q.ref = domain::ref("order", target->substr(18));
  } else if (target->find(':') != std::string::npos) {
    q.ref = *target;
  } else {
    return problem(error(ErrorCode::kInvalidArgument, "'target' '" + *target +
                                                          "' is neither Device/{id}, "
                                                          "MedicationRequest/{id} nor a ref"));
  }
  if (Status s = apply_paging(r, q); !s.ok()) return problem(s);
  return search(l, r, q, [&](const ledger::EntryInfo& e) {
    return domain::fhir::provenance(e, signer_of(l, e.header.kid));
  });
}

Result<std::vector<domain::fhir::Step>> infusion_steps(const ledger::Ledger& l,
                                                       const std::string& order) {
  std::vector<domain::fhir::Step> steps;
  ledger::Query q;
  q.ref = domain::ref("order", order);
  q.limit = limits::kQueryPageEntriesMax;
  while (steps.size() < kInfusionStepsMax) {
    CUSTOS_ASSIGN_OR_RETURN(ledger::QueryPage page, l.query(q));
    for (auto& e : page.entries) {
      const auto& type = e.header.content_type;
      if (type != domain::kTypePumpProgramming && type != domain::kTypeDeviceEvent) continue;
      domain::fhir::Signer s = signer_of(l, e.header.kid);
      steps.push_back({std::move(e), std::move(s)});
    }
    if (!page.next_cursor) break;
    q.cursor = *page.next_cursor;
  }
  return steps;
}

Response get_order_resource(const ledger::Ledger& l, const std::string& kind,
                            const std::string& id) {
  auto o = record<domain::MedicationOrder>(l, domain::order_key(id), "order '" + id + "'");
  if (!o.ok()) return problem(o.status());
  if (kind == "MedicationRequest")
    return fhir_response(domain::fhir::medication_request(*o, signer_of(l, o->prescriber)));
  auto steps = infusion_steps(l, id);
  if (!steps.ok()) return problem(steps.status());
  return fhir_response(domain::fhir::medication_administration(*o, *steps));
}

Response capability_statement(const ledger::Ledger& l) {
  auto resource = [](const char* type, std::vector<const char*> params) {
    Json j = {{"type", type}, {"interaction", Json::array({{{"code", "read"}}})}};
    if (!params.empty()) {
      j["interaction"].push_back({{"code", "search-type"}});
      Json sp = Json::array();
      for (const char* p : params)
        sp.push_back({{"name", p}, {"type", std::string(p) == "date" ? "date" : "reference"}});
      j["searchParam"] = sp;
    }
    return j;
  };
  Json rest = {{"mode", "server"},
               {"resource",
                Json::array({resource("Device", {}), resource("AuditEvent", {"patient", "date"}),
                             resource("Provenance", {"target"}), resource("MedicationRequest", {}),
                             resource("MedicationAdministration", {})})}};
  return fhir_response(
      {{"resourceType", "CapabilityStatement"},
       {"status", "active"},
       {"date", domain::fhir::instant(l.head().time_ms)},
       {"kind", "instance"},
       {"software", {{"name", "custos"}, {"version", "0.1.0"}}},
       {"implementation",
        {{"description", "custos node " + l.node_name() + " of " + l.genesis().consortium}}},
       {"fhirVersion", "4.0.1"},
       {"format", Json::array({"json"})},
       {"rest", Json::array({rest})}});
}

Response route_resource(const ledger::Ledger& l, const Request& r,
                        const std::vector<std::string>& parts) {
  const std::string& type = parts[2];
  if (parts.size() == 3) {
    if (type == "metadata") return capability_statement(l);
    if (type == "AuditEvent") return audit_events(l, r);
    if (type == "Provenance") return provenances(l, r);
    return problem(404, "not-found", "no FHIR search for " + type + " (docs/api.md, FHIR)");
  }
  const std::string& id = parts[3];
  if (type == "Device") return get_device(l, id);
  if (type == "AuditEvent" || type == "Provenance") {
    auto e = entry_of(l, id);
    if (!e.ok()) return problem(e.status());
    const auto signer = signer_of(l, e->header.kid);
    return fhir_response(type == "AuditEvent" ? domain::fhir::audit_event(*e, signer, source_of(l))
                                              : domain::fhir::provenance(*e, signer));
  }
  if (type == "MedicationRequest" || type == "MedicationAdministration")
    return get_order_resource(l, type, id);
  return not_found("no FHIR resource type " + type + " here (docs/api.md, FHIR)");
}

}  // namespace

std::optional<Response> route_fhir(node::Node& node, const Request& r,
                                   const std::vector<std::string>& parts) {
  if (parts.size() < 2 || parts[0] != "fhir" || parts[1] != "R4") return std::nullopt;
  if (parts.size() < 3 || parts.size() > 4) return std::nullopt;
  if (r.method != "GET" && r.method != "HEAD")
    return problem(405, "method-not-allowed", r.method + " is not allowed on " + r.path);
  return route_resource(node.ledger(), r, parts);
}

}  // namespace custos::api
