#include "common/duration_parse.h"

#include <gtest/gtest.h>

#include <string>

namespace genomed {
namespace {

using std::chrono::milliseconds;

TEST(DurationParse, UnitsAndSums) {
  const std::pair<const char*, long long> cases[] = {
      {"0", 0},          {"500ms", 500},    {"30s", 30'000}, {"2m", 120'000},
      {"1h", 3'600'000}, {"1m30s", 90'000}, {"0s", 0},       {"7d", -1}};
  for (const auto& [text, ms] : cases) {
    const auto r = parse_duration(text);
    if (ms < 0) {
      EXPECT_FALSE(r.ok()) << text;
      continue;
    }
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().to_string();
    EXPECT_EQ(*r, milliseconds(ms)) << text;
  }
}

TEST(DurationParse, RefusesMissingUnitsJunkAndMoreThanAWeek) {
  for (const char* text :
       {"", "10", "s", "1.5s", "-1s", "10 s", "1x", "169h", "99999999999999ms"}) {
    const auto r = parse_duration(text);
    EXPECT_FALSE(r.ok()) << text;
    if (!r.ok()) {
      EXPECT_EQ(r.code(), Errc::bad_request);
      EXPECT_NE(r.status().message().find(std::string("'") + text + "'"), std::string::npos)
          << r.status().message();
    }
  }
  EXPECT_TRUE(parse_duration("168h").ok());
}

TEST(DurationParse, FormatsWholeSecondsAsSeconds) {
  EXPECT_EQ(format_duration(milliseconds(30'000)), "30s");
  EXPECT_EQ(format_duration(milliseconds(1'500)), "1500ms");
  EXPECT_EQ(format_duration(milliseconds(0)), "0ms");
}

}  // namespace
}  // namespace genomed
