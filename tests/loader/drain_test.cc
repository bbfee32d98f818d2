#include "loader/drain.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "tests/loader/fake_clock.h"

namespace genomed::loader {
namespace {

using std::chrono::milliseconds;

TEST(Drain, EndsAtOnceWithoutLeasesAndRefusesFromThen) {
  Drain drain(milliseconds(60'000));
  EXPECT_FALSE(drain.active());
  EXPECT_EQ(drain.run([] { return std::uint64_t{0}; }), Drain::Outcome::no_leases);
  EXPECT_TRUE(drain.active());
  EXPECT_EQ(drain.refusal().code(), Errc::shutting_down);
  EXPECT_NE(drain.health_reason().find("draining"), std::string::npos);
}

TEST(Drain, EndsWhenTheLastLeaseIsReportedReleased) {
  Drain drain(milliseconds(600'000));  // far beyond the test's run: only the release ends it
  std::atomic<std::uint64_t> leases{3};
  std::thread releaser([&] {
    // Waits for the drain to begin (an event, not a sleep), then releases.
    while (!drain.active()) std::this_thread::yield();
    for (int i = 0; i < 3; ++i) {
      leases.fetch_sub(1);
      drain.leases_may_have_ended();
    }
  });
  EXPECT_EQ(drain.run([&] { return leases.load(); }), Drain::Outcome::no_leases);
  releaser.join();
  EXPECT_EQ(leases.load(), 0u);
}

TEST(Drain, TimesOutWithLeasesStillHeldWhenItsClockReachesTheTimeout) {
  testing::FakeWaitClock clock;
  Drain drain(milliseconds(20'000), clock);
  const auto deadline = clock.now() + milliseconds(20'000);
  auto outcome =
      std::async(std::launch::async, [&] { return drain.run([] { return std::uint64_t{1}; }); });
  ASSERT_TRUE(clock.await_sleeper_until(deadline));
  clock.advance(milliseconds(19'999));  // not yet: it waits again for the same deadline
  ASSERT_TRUE(clock.await_sleeper_until(deadline));
  EXPECT_NE(drain.health_reason().find("within 1 ms"), std::string::npos) << drain.health_reason();
  clock.advance(milliseconds(1));
  EXPECT_EQ(outcome.get(), Drain::Outcome::timed_out);
}

TEST(Drain, ZeroTimeoutStopsAtOnce) {
  Drain drain(milliseconds(0));
  EXPECT_EQ(drain.run([] { return std::uint64_t{5}; }), Drain::Outcome::timed_out);
}

TEST(Drain, CutShortEndsIt) {
  Drain drain(milliseconds(600'000));
  std::thread cutter([&] {
    while (!drain.active()) std::this_thread::yield();
    drain.cut_short();
  });
  EXPECT_EQ(drain.run([] { return std::uint64_t{1}; }), Drain::Outcome::cut_short);
  cutter.join();
}

}  // namespace
}  // namespace genomed::loader
