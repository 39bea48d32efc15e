// Devices, firmware, advisories and drug libraries (docs/domain.md).
#include "domain/rules.h"

namespace custos::domain {

std::span<const TypeRule> device_rules() {
  return {};
}

}  // namespace custos::domain
