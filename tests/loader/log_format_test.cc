#include "loader/log_format.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

#include <nlohmann/json.hpp>

namespace genomed::loader {
namespace {

std::string format_line(std::string_view payload, spdlog::level::level_enum level) {
  spdlog::details::log_msg msg(spdlog::source_loc{}, "genomed", level,
                               spdlog::string_view_t(payload.data(), payload.size()));
  spdlog::memory_buf_t buf;
  JsonLogFormatter().format(msg, buf);
  return std::string(buf.data(), buf.size());
}

TEST(JsonLogFormatter, EveryByteSurvivesAsOneJsonLine) {
  std::string all;
  for (int c = 1; c < 128; ++c) all += static_cast<char>(c);
  const std::string line = format_line(all, spdlog::level::warn);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  const auto event = nlohmann::json::parse(line);
  EXPECT_EQ(event["msg"], all);
  EXPECT_EQ(event["level"], "warning");
  EXPECT_TRUE(event["pid"].is_number_integer());
  EXPECT_EQ(std::string(event["time"]).back(), 'Z');
}

TEST(JsonLogFormatter, BytesThatAreNotUtf8AreShownEscaped) {
  const auto event = nlohmann::json::parse(format_line("path \xff\xfe end", spdlog::level::info));
  EXPECT_EQ(event["msg"], "path \\xff\\xfe end");
  EXPECT_EQ(event["level"], "info");
}

TEST(JsonEscape, QuotesBackslashesAndControls) {
  std::string out;
  append_json_escaped("a\"b\\c\nd\te\x01", out);
  EXPECT_EQ(out, R"(a\"b\\c\nd\te\u0001)");
}

}  // namespace
}  // namespace genomed::loader
