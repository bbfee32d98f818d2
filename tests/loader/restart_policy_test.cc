#include "loader/restart_policy.h"

#include <gtest/gtest.h>

#include "tests/loader/fake_clock.h"

namespace genomed::loader {
namespace {

using std::chrono::milliseconds;

RestartOptions options() {
  return {.backoff_first = milliseconds(10),
          .backoff_multiplier = 3.0,
          .backoff_max = milliseconds(200),
          .max_restarts = 3,
          .period = milliseconds(1000)};
}

TEST(RestartPolicy, BackoffGrowsByTheMultiplierUpToTheCap) {
  testing::FakeClock clock;
  RestartPolicy p(options(), clock.fn());
  EXPECT_EQ(p.backoff(1), milliseconds(10));
  EXPECT_EQ(p.backoff(2), milliseconds(30));
  EXPECT_EQ(p.backoff(3), milliseconds(90));
  EXPECT_EQ(p.backoff(4), milliseconds(200));
  EXPECT_EQ(p.backoff(40), milliseconds(200));
}

TEST(RestartPolicy, ReplacementWaitsForTheBackoff) {
  testing::FakeClock clock;
  RestartPolicy p(options(), clock.fn());
  EXPECT_EQ(p.on_death(2), clock.now() + milliseconds(30));
  EXPECT_FALSE(p.unhealthy());
}

TEST(RestartPolicy, MoreThanMaxRestartsWithinThePeriodPausesSpawningForAPeriod) {
  testing::FakeClock clock;
  RestartPolicy p(options(), clock.fn());
  for (int i = 0; i < 3; ++i) {
    p.on_death(1);
    clock.advance(milliseconds(100));
  }
  EXPECT_FALSE(p.unhealthy());
  const auto resume = p.on_death(1);  // the 4th within 1000 ms
  EXPECT_TRUE(p.unhealthy());
  EXPECT_EQ(resume, clock.now() + milliseconds(1000));
  clock.advance(milliseconds(999));
  EXPECT_TRUE(p.unhealthy());
  clock.advance(milliseconds(1));
  EXPECT_FALSE(p.unhealthy());
}

TEST(RestartPolicy, RestartsSpreadBeyondThePeriodStayHealthy) {
  testing::FakeClock clock;
  RestartPolicy p(options(), clock.fn());
  for (int i = 0; i < 20; ++i) {
    p.on_death(1);
    clock.advance(milliseconds(400));
  }
  EXPECT_FALSE(p.unhealthy());
}

}  // namespace
}  // namespace genomed::loader
