#include "common/duration_parse.h"

#include <cstdint>

namespace genomed {
namespace {

constexpr std::int64_t kMaxMs = 7LL * 24 * 3600 * 1000;

Status bad(std::string_view text) {
  return Status(Errc::bad_request,
                "expected a duration such as 500ms, 30s, 2m or 1h (at most 7 "
                "days), got '" +
                    std::string(text) + "'");
}

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text == "0") return std::chrono::milliseconds(0);
  if (text.empty()) return bad(text);
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::int64_t n = 0;
    const std::size_t digits_from = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i++] - '0');
      if (n > kMaxMs) return bad(text);
    }
    if (i == digits_from) return bad(text);
    std::int64_t unit_ms = 0;
    if (text.substr(i, 2) == "ms") {
      unit_ms = 1;
      i += 2;
    } else if (i < text.size() && (text[i] == 's' || text[i] == 'm' || text[i] == 'h')) {
      unit_ms = text[i] == 's' ? 1000 : text[i] == 'm' ? 60'000 : 3'600'000;
      ++i;
    } else {
      return bad(text);  // a number without its unit, or an unknown unit
    }
    total += n * unit_ms;
    if (total > kMaxMs) return bad(text);
  }
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
  const std::int64_t ms = d.count();
  if (ms % 1000 != 0 || ms < 1000) return std::to_string(ms) + "ms";
  return std::to_string(ms / 1000) + "s";
}

}  // namespace genomed
