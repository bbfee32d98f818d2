#include "loader/quarantine.h"

#include <gtest/gtest.h>

#include "tests/loader/fake_clock.h"

namespace genomed::loader {
namespace {

using std::chrono::milliseconds;

constexpr FileIdentity kFile{1000, 42};

TEST(Quarantine, SecondStrikeQuarantinesWithCauseAndTimeLeft) {
  testing::FakeClock clock;
  Quarantine q({.strikes = 2, .duration = milliseconds(60'000)}, clock.fn());
  EXPECT_FALSE(q.strike("a", "worker died (signal SIGSEGV)", kFile));
  EXPECT_TRUE(q.check("a", kFile).ok());
  EXPECT_TRUE(q.strike("a", "worker died (signal SIGSEGV)", kFile));
  clock.advance(milliseconds(18'000));
  const Status s = q.check("a", kFile);
  EXPECT_EQ(s.code(), Errc::quarantined);
  EXPECT_NE(s.message().find("42.0 s more"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("SIGSEGV"), std::string::npos);
  EXPECT_EQ(q.active(), 1u);
}

TEST(Quarantine, OtherAdaptersAreUnaffected) {
  testing::FakeClock clock;
  Quarantine q({.strikes = 2}, clock.fn());
  q.strike("a", "x", kFile);
  q.strike("a", "x", kFile);
  EXPECT_TRUE(q.check("b", kFile).ok());
}

TEST(Quarantine, ExpiresAfterItsDuration) {
  testing::FakeClock clock;
  Quarantine q({.strikes = 1, .duration = milliseconds(500)}, clock.fn());
  q.strike("a", "x", kFile);
  clock.advance(milliseconds(499));
  EXPECT_EQ(q.check("a", kFile).code(), Errc::quarantined);
  clock.advance(milliseconds(1));
  EXPECT_TRUE(q.check("a", kFile).ok());
  EXPECT_EQ(q.active(), 0u);
  // Strikes start over after expiry.
  EXPECT_TRUE(q.strike("a", "x", kFile));
}

TEST(Quarantine, ChangedFileLiftsIt) {
  testing::FakeClock clock;
  Quarantine q({.strikes = 1}, clock.fn());
  q.strike("a", "x", kFile);
  EXPECT_TRUE(q.check("a", FileIdentity{1000, 43}).ok());
  EXPECT_FALSE(q.contains("a"));
}

TEST(Quarantine, StrikesOnADifferentFileStartOver) {
  testing::FakeClock clock;
  Quarantine q({.strikes = 2}, clock.fn());
  q.strike("a", "x", kFile);
  EXPECT_FALSE(q.strike("a", "x", FileIdentity{2000, 42}));
  EXPECT_TRUE(q.check("a", FileIdentity{2000, 42}).ok());
}

TEST(Quarantine, ClearLiftsIt) {
  testing::FakeClock clock;
  Quarantine q({.strikes = 1}, clock.fn());
  q.strike("a", "x", kFile);
  q.clear("a");
  EXPECT_TRUE(q.check("a", kFile).ok());
}

}  // namespace
}  // namespace genomed::loader

namespace genomed::loader {
namespace {

TEST(Quarantine, StrikesOlderThanTheDurationAreForgotten) {
  testing::FakeClock clock;
  Quarantine q({.strikes = 2, .duration = std::chrono::milliseconds(1000)}, clock.fn());
  EXPECT_FALSE(q.strike("a", "x", kFile));
  clock.advance(std::chrono::milliseconds(1001));
  EXPECT_FALSE(q.strike("a", "x", kFile));
  EXPECT_TRUE(q.check("a", kFile).ok());
  EXPECT_TRUE(q.strike("a", "x", kFile));
}

}  // namespace
}  // namespace genomed::loader
