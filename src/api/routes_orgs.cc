// GET /v1/orgs, GET /v1/orgs/{id}: registered organisations and their keys.
#include "api/domain_routes.h"
#include "api/http_util.h"
#include "domain/model.h"
#include "ledger/policy.h"

namespace custos::api {

using nlohmann::json;

namespace {

json org_json(const domain::Org& o) {
  json j = {{"id", o.id},
            {"name", o.name},
            {"kind", domain::org_kind_name(o.kind)},
            {"registered_index", o.registered_index}};
  if (!o.gln.empty()) j["gln"] = o.gln;
  return j;
}

Response list_orgs(const ledger::Ledger& l) {
  json orgs = json::array();
  Status bad;
  // Organisations are few (one per member of the consortium and its partners).
  Status s = l.scan_rule_records(domain::org_key(""), [&](ByteView, ByteView value) {
    auto o = domain::Org::decode(value);
    if (!o.ok()) {
      bad = o.status();
      return false;
    }
    orgs.push_back(org_json(*o));
    return true;
  });
  if (!s.ok()) return problem(s);
  if (!bad.ok()) return problem(bad);
  return json_response({{"orgs", orgs}});
}

Response get_org(const ledger::Ledger& l, const std::string& id) {
  auto bytes = l.rule_record(domain::org_key(id));
  if (!bytes.ok()) {
    if (bytes.status().code() == ErrorCode::kNotFound)
      return problem(error(ErrorCode::kNotFound, "organisation '" + id + "' is not registered"));
    return problem(bytes.status());
  }
  auto o = domain::Org::decode(*bytes);
  if (!o.ok()) return problem(o.status());
  json j = org_json(*o);
  json keys = json::array();
  for (const auto& [kid, k] : l.keys()) {
    if (k.org != id) continue;
    keys.push_back({{"kid", to_hex(kid)},
                    {"name", k.name},
                    {"roles", ledger::role_names(k.roles)},
                    {"status", k.revoked() ? "revoked" : "active"}});
  }
  j["keys"] = keys;
  return json_response(j);
}

}  // namespace

std::optional<Response> route_orgs(node::Node& node, const Request& r,
                                   const std::vector<std::string>& parts) {
  if (parts.size() < 2 || parts[1] != "orgs") return std::nullopt;
  const bool get = r.method == "GET" || r.method == "HEAD";
  if (!get) return problem(405, "method-not-allowed", r.method + " is not allowed on " + r.path);
  if (parts.size() == 2) return list_orgs(node.ledger());
  if (parts.size() == 3) return get_org(node.ledger(), parts[2]);
  return std::nullopt;
}

}  // namespace custos::api
