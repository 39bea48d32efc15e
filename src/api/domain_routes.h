// Routes of the health domain (docs/api.md, "Domain"): organisations,
// devices, firmware and advisories, the infusion chain and incident reports,
// off-ledger clinical records, FHIR exports. Each family has its own file;
// route_domain() tries them in turn.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "api/router.h"

namespace custos::api {

// nullopt when no domain route matches (the router answers 404).
std::optional<Response> route_domain(node::Node& node, const Request& r,
                                     const std::vector<std::string>& parts);

// The families (parts[0] == "v1" already checked).
std::optional<Response> route_orgs(node::Node& node, const Request& r,
                                   const std::vector<std::string>& parts);
std::optional<Response> route_devices(node::Node& node, const Request& r,
                                      const std::vector<std::string>& parts);
std::optional<Response> route_infusion(node::Node& node, const Request& r,
                                       const std::vector<std::string>& parts);
std::optional<Response> route_records(node::Node& node, const Request& r,
                                      const std::vector<std::string>& parts);
// /fhir/R4/... (not under /v1: FHIR clients expect the base URL to end in R4);
// the router calls it before its /v1 check.
std::optional<Response> route_fhir(node::Node& node, const Request& r,
                                   const std::vector<std::string>& parts);

}  // namespace custos::api
