#include "common/size_parse.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/safe_text.h"

namespace genomed {

Result<std::uint64_t> parse_size(std::string_view text) {
  const std::string s(text);
  if (s.empty()) return Status(Errc::bad_request, "empty size; expected e.g. 512M or 8G");
  // Decimal digits with an optional fraction, nothing else: strtod alone
  // would also take "0x10", "1e3", "+5" and leading blanks.
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t n = 0;
  while (n < s.size() && digit(s[n])) ++n;
  if (n > 0 && n + 1 < s.size() && s[n] == '.' && digit(s[n + 1])) {
    n += 2;
    while (n < s.size() && digit(s[n])) ++n;
  }
  if (n == 0) {
    return Status(Errc::bad_request, "invalid size " + quote(s) +
                                         "; expected a decimal number and a unit, e.g. 512M or "
                                         "1.5G");
  }
  errno = 0;
  const double number = std::strtod(s.substr(0, n).c_str(), nullptr);
  if (errno != 0 || !std::isfinite(number)) {
    return Status(Errc::bad_request, "size " + quote(s) + " is too large");
  }
  std::string suffix = s.substr(n);
  for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // A unit letter, optionally followed by "B" or "iB"; or a bare "B".
  double mult = 0;
  if (suffix.empty() || suffix == "B") {
    mult = 1;
  } else {
    const std::string rest = suffix.substr(1);
    if (rest.empty() || rest == "B" || rest == "IB") {
      switch (suffix[0]) {
        case 'K':
          mult = 1024.0;
          break;
        case 'M':
          mult = 1024.0 * 1024;
          break;
        case 'G':
          mult = 1024.0 * 1024 * 1024;
          break;
        case 'T':
          mult = 1024.0 * 1024 * 1024 * 1024;
          break;
        default:
          break;
      }
    }
  }
  if (mult == 0)
    return Status(Errc::bad_request, "invalid size suffix in " + quote(s) + "; use K, M, G or T");
  const double bytes = std::round(number * mult);
  // 2^64 is exactly representable; every double below it fits a uint64_t.
  if (bytes >= 18446744073709551616.0)
    return Status(Errc::bad_request, "size " + quote(s) + " is too large");
  return static_cast<std::uint64_t>(bytes);
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
  if (unit == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

}  // namespace genomed
