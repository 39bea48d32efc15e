#include "core/time.h"

#include <cstdio>
#include <ctime>

namespace custos {

// The last instant RFC 3339 can write (a four-digit year): later times are
// written as this one rather than as text no reader accepts.
constexpr uint64_t kRfc3339MsMax = 253402300799999;  // 9999-12-31T23:59:59.999Z

std::string rfc3339_ms(uint64_t ms) {
  ms = ms > kRfc3339MsMax ? kRfc3339MsMax : ms;
  const auto secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  if (gmtime_r(&secs, &tm) == nullptr) return "9999-12-31T23:59:59.999Z";
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03uZ", buf, static_cast<unsigned>(ms % 1000));
  return out;
}

}  // namespace custos
