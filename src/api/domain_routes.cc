#include "api/domain_routes.h"

namespace custos::api {

std::optional<Response> route_domain(node::Node& node, const Request& r,
                                     const std::vector<std::string>& parts) {
  for (auto family : {route_orgs, route_devices, route_infusion, route_records, route_fhir}) {
    if (auto response = family(node, r, parts)) return response;
  }
  return std::nullopt;
}

}  // namespace custos::api
