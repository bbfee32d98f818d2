// Human durations ("30s", "5m", "1h", "250ms", "0") for flags and config
// files, as Ollama's keep_alive and systemd's time spans are written.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace genomed {

// A non-negative number (decimals allowed) with a unit: ms, s, m, h, d. A
// bare "0" means zero; any other number needs its unit (is "30" seconds or
// milliseconds?). At most 365 days. Rounded to whole milliseconds; a positive
// one to at least 1 ms (0 means "never" to --idle-unload and keep_alive).
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

// 30000 ms -> "30s", 1500 ms -> "1500ms": the shortest text parse_duration
// reads back as the same duration (for logs and --help).
std::string format_duration(std::chrono::milliseconds d);

}  // namespace genomed
