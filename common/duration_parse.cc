#include "common/duration_parse.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include "common/safe_text.h"

namespace genomed {

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  const std::string s(text);
  const auto invalid = [&](const std::string& why) {
    return Status(Errc::bad_request,
                  "invalid duration " + quote(s) + ": " + why + "; expected e.g. 30s, 5m, 1h or 0");
  };
  if (s.empty()) return invalid("empty");
  char* end = nullptr;
  errno = 0;
  const double number = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || errno != 0 || !std::isfinite(number) || number < 0 ||
      !std::isdigit(static_cast<unsigned char>(s[0]))) {
    return invalid("not a non-negative number");
  }
  const std::string unit(end);
  double ms_per_unit = 0;
  if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit == "s") {
    ms_per_unit = 1e3;
  } else if (unit == "m") {
    ms_per_unit = 60e3;
  } else if (unit == "h") {
    ms_per_unit = 3600e3;
  } else if (unit == "d") {
    ms_per_unit = 86400e3;
  } else if (unit.empty() && number == 0) {
    return std::chrono::milliseconds(0);
  } else {
    return invalid(unit.empty() ? "a unit is required" : "unknown unit " + quote(unit));
  }
  // A positive duration never rounds to 0: to --idle-unload and keep_alive
  // 0 means "never", the opposite of a very short time.
  const double ms = number > 0 ? std::max(1.0, std::round(number * ms_per_unit)) : 0.0;
  if (ms > 365.0 * 86400e3) return invalid("more than 365 days");
  return std::chrono::milliseconds(static_cast<long long>(ms));
}

std::string format_duration(std::chrono::milliseconds d) {
  const std::int64_t ms = d.count();
  if (ms % 1000 != 0 || ms < 1000) return std::to_string(ms) + "ms";
  return std::to_string(ms / 1000) + "s";
}

}  // namespace genomed
