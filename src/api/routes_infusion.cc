#include "api/domain_routes.h"

namespace custos::api {

std::optional<Response> route_infusion(node::Node&, const Request&,
                                       const std::vector<std::string>&) {
  return std::nullopt;
}

}  // namespace custos::api
