// When custos_net links spdlog::spdlog, SPDLOG_COMPILED_LIB is defined and
// the compiled library is used; otherwise spdlog and fmt are header-only here.
#ifndef SPDLOG_COMPILED_LIB
#define FMT_HEADER_ONLY
#endif
#include "net/log.h"

#include <spdlog/spdlog.h>

namespace custos::net::log {

void debug(const std::string& message) {
  spdlog::debug("net: {}", message);
}
void info(const std::string& message) {
  spdlog::info("net: {}", message);
}
void warn(const std::string& message) {
  spdlog::warn("net: {}", message);
}
void error(const std::string& message) {
  spdlog::error("net: {}", message);
}

}  // namespace custos::net::log
