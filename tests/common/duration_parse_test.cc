#include "common/duration_parse.h"

#include <gtest/gtest.h>

namespace genomed {
namespace {

using std::chrono::milliseconds;

TEST(ParseDuration, AcceptsEveryUnitAndDecimals) {
  EXPECT_EQ(*parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(*parse_duration("30s"), milliseconds(30'000));
  EXPECT_EQ(*parse_duration("1.5s"), milliseconds(1'500));
  EXPECT_EQ(*parse_duration("5m"), milliseconds(300'000));
  EXPECT_EQ(*parse_duration("2h"), milliseconds(7'200'000));
  EXPECT_EQ(*parse_duration("1d"), milliseconds(86'400'000));
  EXPECT_EQ(*parse_duration("0"), milliseconds(0));
  EXPECT_EQ(*parse_duration("0s"), milliseconds(0));
}

TEST(ParseDuration, APositiveDurationUnderAMillisecondIsOneNotZero) {
  // 0 means "never" to --idle-unload and keep_alive: "0.1ms" rounded to 0
  // turned the shortest idle time into no idle unload at all.
  EXPECT_EQ(*parse_duration("0.1ms"), milliseconds(1));
  EXPECT_EQ(*parse_duration("0.0001s"), milliseconds(1));
  EXPECT_EQ(*parse_duration("0.0ms"), milliseconds(0));
}

TEST(ParseDuration, RefusesWhatItCannotReadNamingTheText) {
  for (const char* bad : {"", "30", "-1s", "s", "5 m", "5min", "1e400s", "nan", "400d", "+5s"}) {
    const auto r = parse_duration(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.code(), Errc::bad_request);
    EXPECT_NE(r.status().message().find("'" + std::string(bad) + "'"), std::string::npos)
        << r.status().message();
  }
  EXPECT_NE(parse_duration("30").status().message().find("unit is required"), std::string::npos);
}

TEST(ParseDuration, FormatsWholeSecondsAsSecondsAndReadsThemBack) {
  EXPECT_EQ(format_duration(milliseconds(30'000)), "30s");
  EXPECT_EQ(format_duration(milliseconds(1'500)), "1500ms");
  EXPECT_EQ(format_duration(milliseconds(0)), "0ms");
  for (const auto d : {milliseconds(0), milliseconds(1'500), milliseconds(30'000)})
    EXPECT_EQ(*parse_duration(format_duration(d)), d);
}

}  // namespace
}  // namespace genomed
