#include "loader/circuit_breaker.h"

#include <gtest/gtest.h>

#include "tests/loader/fake_clock.h"

namespace genomed::loader {
namespace {

using std::chrono::milliseconds;
using State = CircuitBreaker::State;

BreakerOptions options() {
  return {.failure_threshold = 3,
          .window = milliseconds(1000),
          .cooldown = milliseconds(500),
          .cooldown_multiplier = 2.0,
          .max_cooldown = milliseconds(1500),
          .half_open_probes = 1};
}

TEST(CircuitBreaker, OpensAtTheThresholdWithinTheWindow) {
  testing::FakeClock clock;
  CircuitBreaker b(options(), clock.fn());
  b.record_failure();
  b.record_failure();
  EXPECT_EQ(b.state(), State::closed);
  EXPECT_TRUE(b.admit().ok());
  b.record_failure();
  EXPECT_EQ(b.state(), State::open);
  auto refused = b.admit();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), Errc::circuit_open);
  EXPECT_NE(refused.status().message().find("500 ms more"), std::string::npos)
      << refused.status().message();
}

TEST(CircuitBreaker, FailuresOutsideTheWindowDoNotCount) {
  testing::FakeClock clock;
  CircuitBreaker b(options(), clock.fn());
  b.record_failure();
  b.record_failure();
  clock.advance(milliseconds(1001));
  b.record_failure();
  EXPECT_EQ(b.state(), State::closed);
  b.record_failure();
  EXPECT_EQ(b.state(), State::closed);
  b.record_failure();
  EXPECT_EQ(b.state(), State::open);
}

TEST(CircuitBreaker, ClosedOpenHalfOpenClosedThenOpenAgainWithLongerCooldown) {
  testing::FakeClock clock;
  CircuitBreaker b(options(), clock.fn());
  for (int i = 0; i < 3; ++i) b.record_failure();
  ASSERT_EQ(b.state(), State::open);
  clock.advance(milliseconds(499));
  EXPECT_EQ(b.state(), State::open);
  clock.advance(milliseconds(1));
  EXPECT_EQ(b.state(), State::half_open);
  auto probe = b.admit();
  ASSERT_TRUE(probe.ok());
  EXPECT_TRUE(probe->probe);
  // Only one probe at a time while half-open.
  EXPECT_EQ(b.admit().code(), Errc::circuit_open);
  b.record(*probe, /*worker_failed=*/false);
  EXPECT_EQ(b.state(), State::closed);
  EXPECT_EQ(b.current_cooldown(), milliseconds(500));

  for (int i = 0; i < 3; ++i) b.record_failure();
  ASSERT_EQ(b.state(), State::open);
  clock.advance(milliseconds(500));
  ASSERT_EQ(b.state(), State::half_open);
  auto failing = b.admit();
  ASSERT_TRUE(failing.ok());
  b.record(*failing, /*worker_failed=*/true);
  EXPECT_EQ(b.state(), State::open);
  EXPECT_EQ(b.current_cooldown(), milliseconds(1000));
  clock.advance(milliseconds(999));
  EXPECT_EQ(b.state(), State::open);
  clock.advance(milliseconds(1));
  EXPECT_EQ(b.state(), State::half_open);
  EXPECT_EQ(b.transitions(), 7u);  // C-O, O-H, H-C, C-O, O-H, H-O, O-H
}

TEST(CircuitBreaker, CooldownGrowthIsCapped) {
  testing::FakeClock clock;
  CircuitBreaker b(options(), clock.fn());
  for (int i = 0; i < 3; ++i) b.record_failure();
  for (int round = 0; round < 5; ++round) {
    clock.advance(b.current_cooldown());
    ASSERT_EQ(b.state(), State::half_open);
    auto probe = b.admit();
    ASSERT_TRUE(probe.ok());
    b.record(*probe, true);
  }
  EXPECT_EQ(b.current_cooldown(), milliseconds(1500));
}

TEST(CircuitBreaker, NonProbeResultsDoNotCloseAHalfOpenBreaker) {
  testing::FakeClock clock;
  CircuitBreaker b(options(), clock.fn());
  auto before = b.admit();  // admitted while closed
  ASSERT_TRUE(before.ok());
  for (int i = 0; i < 3; ++i) b.record_failure();
  clock.advance(milliseconds(500));
  ASSERT_EQ(b.state(), State::half_open);
  b.record(*before, false);
  EXPECT_EQ(b.state(), State::half_open);
}

TEST(CircuitBreaker, FailuresWhileOpenAreNotCountedTowardsTheNextWindow) {
  testing::FakeClock clock;
  CircuitBreaker b(options(), clock.fn());
  for (int i = 0; i < 3; ++i) b.record_failure();
  b.record_failure();  // a straggler of a load admitted before
  clock.advance(milliseconds(500));
  auto probe = b.admit();
  ASSERT_TRUE(probe.ok());
  b.record(*probe, false);
  ASSERT_EQ(b.state(), State::closed);
  b.record_failure();
  b.record_failure();
  EXPECT_EQ(b.state(), State::closed);
}

}  // namespace
}  // namespace genomed::loader
