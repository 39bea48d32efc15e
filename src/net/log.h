// Internal to src/net: logging through spdlog, kept in one translation unit.
//
// custos_net does not link spdlog (CMakeLists.txt); until it does, log.cc uses
// spdlog (and fmt) header-only. Callers pass finished strings, so no fmt or
// spdlog types leak into the rest of the subsystem.
#pragma once

#include <string>

namespace custos::net::log {

void debug(const std::string& message);
void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);

}  // namespace custos::net::log
