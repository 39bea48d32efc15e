// Devices, firmware, advisories and drug libraries (docs/api.md, "Devices"):
//   GET /v1/devices, /v1/devices/{id}, /v1/devices/{id}/timeline,
//   /v1/devices/{id}/state, /v1/firmware/{maker}, /v1/firmware/{maker}/{version},
//   /v1/advisories, /v1/advisories/{id}, /v1/advisories/{id}/exposure,
//   /v1/drug-libraries/{hospital}.
// Ids may contain '/', so an id is the rest of the path (before a trailing
// "timeline", "state" or "exposure").
#include "api/domain_routes.h"
#include "api/http_util.h"
#include "codec/cbor_json.h"
#include "domain/device_queries.h"
#include "ledger/policy.h"

namespace custos::api {

using domain::DeviceQueries;
using nlohmann::json;

namespace {

// --- JSON shapes ---

json cursor_json(const std::optional<std::string>& c) {
  return c ? json(*c) : json(nullptr);
}

json signer_json(const domain::SignerInfo& s) {
  json j = {{"kid", to_hex(s.kid)}};
  if (!s.known) {
    j["status"] = "unknown";
    return j;
  }
  j["name"] = s.name;
  j["roles"] = ledger::role_names(s.roles);
  j["status"] = s.revoked ? "revoked" : "active";
  if (!s.org.empty()) j["org"] = s.org;
  return j;
}

json evidence_json(const domain::Evidence& e) {
  return {{"entry", to_hex(e.entry)},
          {"index", e.index},
          {"registered_ms", e.ms},
          {"registered_at", rfc3339(e.ms)},
          {"signer", signer_json(e.signer)}};
}

json udi_json(const domain::Udi& u) {
  json j = {{"di", u.di}, {"serial", u.serial}, {"hrf", u.hrf()}};
  if (!u.lot.empty()) j["lot"] = u.lot;
  if (!u.manufactured.empty()) j["manufactured"] = u.manufactured;
  if (!u.expires.empty()) j["expires"] = u.expires;
  return j;
}

json device_json(const domain::Device& d) {
  json j = {{"id", d.id},
            {"maker", d.maker},
            {"holder", d.holder},
            {"model", d.model},
            {"class", d.device_class},
            {"udi", udi_json(d.udi)},
            {"kid", to_hex(d.kid)},
            {"status", d.status == domain::DeviceStatus::kActive ? "active" : "decommissioned"},
            {"registered_index", d.registered_index}};
  if (!d.care_area.empty()) j["care_area"] = d.care_area;
  if (!d.location.empty()) j["location"] = d.location;
  if (d.firmware) {
    j["firmware"] = {{"version", d.firmware->version},
                     {"image_sha256", to_hex(d.firmware->image_sha256)},
                     {"since_index", d.firmware->since_index},
                     {"since_ms", d.firmware->since_ms},
                     {"since", rfc3339(d.firmware->since_ms)}};
  }
  return j;
}

json release_json(const domain::FirmwareRelease& r) {
  return {{"maker", r.maker},
          {"version", r.version},
          {"image_sha256", to_hex(r.image_sha256)},
          {"sbom_sha256", to_hex(r.sbom_sha256)},
          {"models", r.models},
          {"index", r.index}};
}

json advisory_json(const domain::Advisory& a) {
  json j = {{"id", a.id},
            {"issuer", a.issuer},
            {"maker", a.maker},
            {"models", a.models},
            {"versions", a.versions},
            {"cves", a.cves},
            {"severity", a.severity},
            {"index", a.index},
            {"published_ms", a.published_ms},
            {"published_at", rfc3339(a.published_ms)}};
  if (!a.fixed_in.empty()) j["fixed_in"] = a.fixed_in;
  return j;
}

json advisories_json(const std::vector<domain::Advisory>& advs) {
  json out = json::array();
  for (const auto& a : advs) out.push_back(advisory_json(a));
  return out;
}

json library_json(const domain::DrugLibrary& l) {
  return {{"hospital", l.hospital}, {"version", l.version},   {"sha256", to_hex(l.sha256)},
          {"index", l.index},       {"since_ms", l.since_ms}, {"since", rfc3339(l.since_ms)}};
}

json timeline_item_json(const domain::TimelineItem& i) {
  json j = entry_json(i.entry, false);
  j["kind"] = i.kind;
  j["summary"] = i.summary;
  j["signer"] = signer_json(i.signer);
  if (auto st = cose::parse_statement(i.entry.statement); st.ok()) {
    if (auto payload = cbor::decode(st->payload()); payload.ok())
      j["payload"] = cbor::to_json(*payload);
  }
  return j;
}

json firmware_at_json(const domain::FirmwareAtTime& f) {
  json advised_then = json::array();
  for (const auto& a : f.advisories_at_time) advised_then.push_back(a.id);
  json j = {{"version", f.version},
            {"image_sha256", to_hex(f.image_sha256)},
            {"from_registration", f.from_registration},
            {"installed", evidence_json(f.installed)},
            {"flags", f.flags},
            {"released", f.release.has_value()},
            {"released_at_time", f.released_at_time},
            {"image_matches_release", f.image_matches},
            {"approved_for_model", f.approved_for_model},
            {"advisories_at_time", advised_then},
            {"advisories_now", advisories_json(f.advisories_now)}};
  if (f.release) j["release"] = release_json(*f.release);
  return j;
}

json state_json(const domain::DeviceStateAtTime& s) {
  const auto& p = s.placement;
  json j = {{"device", s.device},
            {"at_ms", s.at_ms},
            {"at", rfc3339(s.at_ms)},
            {"log_size_at", s.log_size_at},
            {"maker", s.now.maker},
            {"model", s.now.model},
            {"class", s.now.device_class},
            {"holder", p.holder},
            {"holder_since", evidence_json(p.holder_since)},
            {"decommissioned", p.decommissioned}};
  j["installation"] = p.installed ? json{{"care_area", p.care_area},
                                         {"location", p.location},
                                         {"since", evidence_json(*p.installed)}}
                                  : json(nullptr);
  if (p.decommissioned_by) j["decommissioned_by"] = evidence_json(*p.decommissioned_by);
  j["firmware"] = s.firmware ? firmware_at_json(*s.firmware) : json(nullptr);
  json lib = {{"reported", nullptr}, {"hospital_current", nullptr}, {"matches", nullptr}};
  if (s.reported_library)
    lib["reported"] = {{"version", s.reported_library->version},
                       {"reported", evidence_json(s.reported_library->reported)}};
  if (s.hospital_library) lib["hospital_current"] = library_json(*s.hospital_library);
  if (s.reported_library && s.hospital_library)
    lib["matches"] = s.reported_library->version == s.hospital_library->version;
  j["drug_library"] = lib;
  return j;
}

// --- Parameters ---

Result<size_t> limit_param(const Request& r, size_t default_limit, size_t max) {
  const std::string* v = query_param(r, "limit");
  if (!v) return default_limit;
  CUSTOS_ASSIGN_OR_RETURN(uint64_t l, parse_uint(*v, "limit"));
  if (l == 0 || l > max) {
    return error(ErrorCode::kInvalidArgument,
                 "'limit' must be between 1 and " + std::to_string(max));
  }
  return static_cast<size_t>(l);
}

std::optional<std::string> text_param(const Request& r, const char* name) {
  const std::string* v = query_param(r, name);
  return v ? std::optional<std::string>(*v) : std::nullopt;
}

// "a", "b", "c" -> "a/b/c": an id that contains slashes.
std::string join(const std::vector<std::string>& parts, size_t from, size_t to) {
  std::string out;
  for (size_t i = from; i < to; ++i) out += (i == from ? "" : "/") + parts[i];
  return out;
}

// --- Handlers ---

Response list_devices(const DeviceQueries& q, const Request& r) {
  domain::DeviceFilter f;
  f.holder = text_param(r, "holder");
  f.maker = text_param(r, "maker");
  f.device_class = text_param(r, "class");
  f.cursor = text_param(r, "cursor").value_or("");
  auto limit = limit_param(r, domain::kListPageDefault, domain::kListPageMax);
  if (!limit.ok()) return problem(limit.status());
  f.limit = *limit;
  auto page = q.devices(f);
  if (!page.ok()) return problem(page.status());
  json devices = json::array();
  for (const auto& d : page->items) devices.push_back(device_json(d));
  return json_response({{"devices", devices}, {"next_cursor", cursor_json(page->next_cursor)}});
}

Response get_device(const DeviceQueries& q, const std::string& id) {
  auto v = q.device(id);
  if (!v.ok()) return problem(v.status());
  json j = device_json(v->device);
  j["key"] = v->key ? signer_json(*v->key) : json(nullptr);
  j["release"] = v->release ? release_json(*v->release) : json(nullptr);
  j["advisories"] = advisories_json(v->advisories);
  return json_response(j);
}

Response get_timeline(const DeviceQueries& q, const Request& r, const std::string& id) {
  domain::TimelineQuery tq;
  for (auto [name, field] : {std::pair{"from", &tq.from_ms}, std::pair{"to", &tq.to_ms}}) {
    if (const std::string* v = query_param(r, name)) {
      auto t = parse_time_ms(*v, name);
      if (!t.ok()) return problem(t.status());
      *field = *t;
    }
  }
  if (const std::string* v = query_param(r, "cursor")) {
    auto c = parse_uint(*v, "cursor");
    if (!c.ok()) return problem(c.status());
    tq.cursor = *c;
  }
  if (const std::string* v = query_param(r, "order")) {
    if (*v != "asc" && *v != "desc")
      return problem(error(ErrorCode::kInvalidArgument, "'order' must be asc or desc"));
    tq.descending = *v == "desc";
  }
  auto limit = limit_param(r, domain::kTimelinePageDefault, domain::kTimelinePageMax);
  if (!limit.ok()) return problem(limit.status());
  tq.limit = *limit;
  auto page = q.timeline(id, tq);
  if (!page.ok()) return problem(page.status());
  json items = json::array();
  for (const auto& i : page->items) items.push_back(timeline_item_json(i));
  json out = {{"device", id}, {"order", tq.descending ? "desc" : "asc"}, {"entries", items}};
  out["next_cursor"] = page->next_cursor ? json(std::to_string(*page->next_cursor)) : json(nullptr);
  return json_response(out);
}

Response get_state(const DeviceQueries& q, const Request& r, const std::string& id) {
  const std::string* at = query_param(r, "at");
  if (!at)
    return problem(error(ErrorCode::kInvalidArgument,
                         "need query parameter 'at' (milliseconds since 1970 or a UTC time)"));
  auto t = parse_time_ms(*at, "at");
  if (!t.ok()) return problem(t.status());
  auto s = q.state_at(id, *t);
  if (!s.ok()) return problem(s.status());
  return json_response(state_json(*s));
}

Response list_releases(const DeviceQueries& q, const Request& r, const std::string& maker) {
  auto limit = limit_param(r, domain::kListPageDefault, domain::kListPageMax);
  if (!limit.ok()) return problem(limit.status());
  auto page = q.releases(maker, text_param(r, "cursor").value_or(""), *limit);
  if (!page.ok()) return problem(page.status());
  json releases = json::array();
  for (const auto& rel : page->items) releases.push_back(release_json(rel));
  return json_response(
      {{"maker", maker}, {"releases", releases}, {"next_cursor", cursor_json(page->next_cursor)}});
}

Response get_release(const DeviceQueries& q, const std::string& maker, const std::string& version) {
  auto v = q.release(maker, version);
  if (!v.ok()) return problem(v.status());
  json j = release_json(v->release);
  j["released"] = evidence_json(v->released);
  j["advisories"] = advisories_json(v->advisories);
  j["devices_running"] = v->devices_running;
  j["devices_running_capped"] = v->devices_running_capped;
  return json_response(j);
}

Response list_advisories(const DeviceQueries& q, const Request& r) {
  auto limit = limit_param(r, domain::kListPageDefault, domain::kListPageMax);
  if (!limit.ok()) return problem(limit.status());
  auto page = q.advisories(text_param(r, "maker"), text_param(r, "cursor").value_or(""), *limit);
  if (!page.ok()) return problem(page.status());
  return json_response({{"advisories", advisories_json(page->items)},
                        {"next_cursor", cursor_json(page->next_cursor)}});
}

Response get_advisory(const DeviceQueries& q, const std::string& id) {
  auto v = q.advisory(id);
  if (!v.ok()) return problem(v.status());
  json j = advisory_json(v->advisory);
  j["published"] = evidence_json(v->published);
  j["fix"] = v->fix ? release_json(*v->fix) : json(nullptr);
  return json_response(j);
}

Response get_exposure(const DeviceQueries& q, const Request& r, const std::string& id) {
  auto limit = limit_param(r, domain::kExposurePageDefault, domain::kExposurePageMax);
  if (!limit.ok()) return problem(limit.status());
  auto e = q.exposure(id, text_param(r, "cursor").value_or(""), *limit);
  if (!e.ok()) return problem(e.status());
  json holders = json::array();
  for (const auto& g : e->groups) {
    json devices = json::array();
    for (const auto& d : g.devices) {
      json dj = {{"id", d.id},
                 {"model", d.model},
                 {"class", d.device_class},
                 {"udi", d.udi.hrf()},
                 {"firmware_version", d.firmware ? d.firmware->version : ""},
                 {"firmware_since", d.firmware ? rfc3339(d.firmware->since_ms) : ""}};
      dj["care_area"] = d.care_area.empty() ? json(nullptr) : json(d.care_area);
      dj["location"] = d.location.empty() ? json(nullptr) : json(d.location);
      devices.push_back(dj);
    }
    json h = {{"holder", g.holder}, {"devices", devices}};
    if (g.org) {
      h["name"] = g.org->name;
      h["kind"] = domain::org_kind_name(g.org->kind);
    }
    holders.push_back(h);
  }
  return json_response({{"advisory", advisory_json(e->advisory)},
                        {"device_count", e->device_count},
                        {"holders", holders},
                        {"next_cursor", cursor_json(e->next_cursor)}});
}

Response get_drug_library(const DeviceQueries& q, const std::string& hospital) {
  auto v = q.drug_library(hospital);
  if (!v.ok()) return problem(v.status());
  json history = json::array();
  for (const auto& [lib, ev] : v->history) {
    json h = library_json(lib);
    h["released"] = evidence_json(ev);
    history.push_back(h);
  }
  return json_response(
      {{"hospital", hospital}, {"current", library_json(v->current)}, {"history", history}});
}

std::optional<Response> route(const DeviceQueries& q, const Request& r,
                              const std::vector<std::string>& parts) {
  const size_t n = parts.size();
  const std::string& family = parts[1];
  const std::string& last = parts.back();
  if (family == "devices") {
    if (n == 2) return list_devices(q, r);
    if (n >= 4 && last == "timeline") return get_timeline(q, r, join(parts, 2, n - 1));
    if (n >= 4 && last == "state") return get_state(q, r, join(parts, 2, n - 1));
    return get_device(q, join(parts, 2, n));
  }
  if (family == "firmware") {
    if (n == 3) return list_releases(q, r, parts[2]);
    if (n >= 4) return get_release(q, parts[2], join(parts, 3, n));
    return std::nullopt;
  }
  if (family == "advisories") {
    if (n == 2) return list_advisories(q, r);
    if (n >= 4 && last == "exposure") return get_exposure(q, r, join(parts, 2, n - 1));
    return get_advisory(q, join(parts, 2, n));
  }
  if (family == "drug-libraries" && n == 3) return get_drug_library(q, parts[2]);
  return std::nullopt;
}

bool is_device_family(const std::string& family) {
  return family == "devices" || family == "firmware" || family == "advisories" ||
         family == "drug-libraries";
}

}  // namespace

std::optional<Response> route_devices(node::Node& node, const Request& r,
                                      const std::vector<std::string>& parts) {
  if (parts.size() < 2 || !is_device_family(parts[1])) return std::nullopt;
  const bool get = r.method == "GET" || r.method == "HEAD";
  if (!get) return problem(405, "method-not-allowed", r.method + " is not allowed on " + r.path);
  return route(DeviceQueries(node.ledger()), r, parts);
}

}  // namespace custos::api
