// The daemon's log line formats (--log-format): "text", spdlog's pattern for
// people ("2026-01-02T03:04:05.678 info message"), or "json" for log shippers:
// one JSON object per line, per event,
//   {"time":"2026-01-02T03:04:05.678Z","level":"info","pid":123,"tid":456,"msg":"..."}
// with the message escaped as JSON requires. Text a client controls is
// already escaped by common/safe_text.h before it reaches a log call (\xNN);
// a message that is still not UTF-8 (a path from the host, say) is passed
// through printable() first, so every line is valid JSON and UTF-8.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>
#include <string_view>

#include "loader/ops_options.h"

namespace genomed::loader {

class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

// `text` as the body of a JSON string (without the quotes), appended to `out`.
void append_json_escaped(std::string_view text, std::string& out);

// Installs the format on spdlog's default logger.
void use_log_format(LogFormat format);

}  // namespace genomed::loader
