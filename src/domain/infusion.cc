#include "domain/rules.h"

namespace custos::domain {

std::span<const TypeRule> infusion_rules() {
  return {};
}

}  // namespace custos::domain
