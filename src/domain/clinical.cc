#include "domain/rules.h"

namespace custos::domain {

std::span<const TypeRule> record_rules() {
  return {};
}

}  // namespace custos::domain
