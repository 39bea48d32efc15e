// Times as people and other programs read them.
#pragma once

#include <cstdint>
#include <string>

namespace custos {

// RFC 3339 in UTC with milliseconds, e.g. 2026-11-23T10:00:00.000Z (also a
// valid FHIR instant). Times after year 9999 are written as its last instant.
std::string rfc3339_ms(uint64_t ms_since_epoch);

}  // namespace custos
