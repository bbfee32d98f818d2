// Human durations ("30s", "500ms", "2m", "1h", "1m30s") for flags and config
// files that take a DURATION rather than a count of milliseconds.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace genomed {

// One or more <integer><unit> parts, unit one of ms, s, m, h; "0" alone is
// zero. At most 7 days. Errors (bad_request) quote the text.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

// 30000 ms -> "30s", 1500 ms -> "1500ms".
std::string format_duration(std::chrono::milliseconds d);

}  // namespace genomed
