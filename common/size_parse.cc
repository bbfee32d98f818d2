#include "common/size_parse.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace genomed {

Result<std::uint64_t> parse_size(std::string_view text) {
  const std::string s(text);
  if (s.empty()) return Status(Errc::bad_request, "empty size; expected e.g. 512M or 8G");
  char* end = nullptr;
  errno = 0;
  const double number = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || errno != 0 || !std::isfinite(number) || number < 0) {
    return Status(Errc::bad_request, "invalid size '" + s + "'; expected e.g. 512M or 8G");
  }
  std::string suffix(end);
  for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (suffix.size() >= 2 && suffix.substr(suffix.size() - 2) == "IB") suffix.resize(suffix.size() - 2);
  else if (suffix.size() >= 2 && suffix.back() == 'B') suffix.pop_back();
  double mult = 1;
  if (suffix.empty() || suffix == "B") mult = 1;
  else if (suffix == "K") mult = 1024.0;
  else if (suffix == "M") mult = 1024.0 * 1024;
  else if (suffix == "G") mult = 1024.0 * 1024 * 1024;
  else if (suffix == "T") mult = 1024.0 * 1024 * 1024 * 1024;
  else return Status(Errc::bad_request, "invalid size suffix in '" + s + "'; use K, M, G or T");
  const double bytes = number * mult;
  if (bytes >= 18446744073709551615.0) return Status(Errc::bad_request, "size '" + s + "' is too large");
  return static_cast<std::uint64_t>(std::llround(bytes));
}

std::string format_size(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

}  // namespace genomed
