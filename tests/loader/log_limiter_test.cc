// What one connection can make the daemon log is bounded: a burst, then one
// line per interval, each saying how many were held back.
#include "loader/log_limiter.h"

#include <gtest/gtest.h>

namespace genomed::loader {
namespace {

using namespace std::chrono_literals;

TEST(LogLimiter, WritesTheBurstThenOneLinePerIntervalCountingTheRest) {
  LogLimiter limiter({.burst = 3, .interval = 10s});
  const LogLimiter::Clock::time_point t0{};
  for (int i = 0; i < 3; ++i) {
    const auto v = limiter.admit(t0);
    EXPECT_TRUE(v.write) << i;
    EXPECT_EQ(v.held_back, 0u);
  }
  for (int i = 0; i < 100'000; ++i) EXPECT_FALSE(limiter.admit(t0 + 9s).write);
  EXPECT_EQ(limiter.held_back(), 100'000u);
  const auto summary = limiter.admit(t0 + 10s);
  EXPECT_TRUE(summary.write);
  EXPECT_EQ(summary.held_back, 100'000u) << "the line written says how many were held back";
  EXPECT_EQ(limiter.held_back(), 0u);
  EXPECT_FALSE(limiter.admit(t0 + 19s).write);
  EXPECT_TRUE(limiter.admit(t0 + 20s).write);
}

TEST(LogLimiter, AFloodWritesAtMostBurstPlusOneLinePerInterval) {
  LogLimiter limiter({.burst = 10, .interval = 10s});
  const LogLimiter::Clock::time_point t0{};
  int written = 0;
  // A million warnings over 60 s.
  for (int i = 0; i < 1'000'000; ++i) {
    written += limiter.admit(t0 + std::chrono::microseconds(i * 60)).write ? 1 : 0;
  }
  EXPECT_LE(written, 10 + 6);
  EXPECT_GE(written, 10 + 5);
}

}  // namespace
}  // namespace genomed::loader
