// RunClock over a FakeWaitClock, the test being its heartbeat (beat()):
// the clock stands still while the process does not run, charging at most
// beat + slack of a pause, and a wait a pause cut short waits for the rest.
#include "common/run_clock.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <future>
#include <vector>

#include "tests/loader/fake_clock.h"

namespace genomed {
namespace {

using genomed::testing::FakeWaitClock;
using namespace std::chrono_literals;

constexpr auto kHang = 10s;  // real time after which a wait counts as a hang

class RunClockTest : public ::testing::Test {
 protected:
  // The process running for `d`: time moves in heartbeats, each looked at.
  void run_for(std::chrono::milliseconds d) {
    for (auto left = d; left > 0ms; left -= 50ms) {
      raw_.advance(std::min(left, 50ms));
      clock_.beat();
    }
  }

  FakeWaitClock raw_;
  std::vector<RunClock::Duration> pauses_;  // what the observer was told
  RunClock clock_{raw_, 50ms, 100ms, [this](RunClock::Duration d) { pauses_.push_back(d); }};
};

TEST_F(RunClockTest, RunsWithTheUnderlyingClockWhileTheHeartbeatLooks) {
  const auto t0 = clock_.now();
  EXPECT_EQ(t0, raw_.now());
  run_for(1s);
  EXPECT_EQ(clock_.now(), t0 + 1s);
  EXPECT_EQ(clock_.paused(), 0s);
  EXPECT_TRUE(pauses_.empty());
  // A late look within beat + slack is scheduling noise: charged in full.
  raw_.advance(150ms);
  clock_.beat();
  EXPECT_EQ(clock_.now(), t0 + 1150ms);
  EXPECT_TRUE(pauses_.empty());
}

TEST_F(RunClockTest, StandsStillWhileTheProcessDoesNotRun) {
  const auto t0 = clock_.now();
  raw_.advance(5s);  // stopped: no look
  // Read before the heartbeat has looked (every thread resumes at once):
  // at most beat + slack of the pause shows.
  EXPECT_EQ(clock_.now(), t0 + 150ms);
  clock_.beat();
  EXPECT_EQ(clock_.now(), t0 + 150ms) << "not continuous across the look that saw the pause";
  EXPECT_EQ(clock_.paused(), 5s - 150ms);
  ASSERT_EQ(pauses_.size(), 1u);
  EXPECT_EQ(pauses_[0], 5s - 150ms);
  run_for(100ms);
  EXPECT_EQ(clock_.now(), t0 + 250ms);
}

TEST_F(RunClockTest, AConditionWaitCutShortByAPauseWaitsForTheRest) {
  const auto t0 = clock_.now();
  std::mutex mu;
  std::condition_variable cv;
  auto waited = std::async(std::launch::async, [&] {
    std::unique_lock lock(mu);
    while (clock_.now() < t0 + 1s) clock_.wait_until(cv, lock, t0 + 1s);
    return clock_.now();
  });
  ASSERT_TRUE(raw_.await_sleeper_until(t0 + 1s));
  raw_.advance(5s);  // a pause: the wait wakes and finds 850 ms left
  ASSERT_TRUE(raw_.await_sleeper_until(t0 + 5s + 850ms)) << "the pause was charged";
  clock_.beat();
  run_for(800ms);
  EXPECT_EQ(waited.wait_for(0s), std::future_status::timeout) << "returned before its time";
  run_for(50ms);
  ASSERT_EQ(waited.wait_for(kHang), std::future_status::ready);
  EXPECT_EQ(waited.get(), t0 + 1s);
}

TEST_F(RunClockTest, APollCutShortByAPauseWaitsForTheRestThenReportsReadiness) {
  const auto t0 = clock_.now();
  const int never = ::eventfd(0, EFD_CLOEXEC);
  const int later = ::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(never, 0);
  ASSERT_GE(later, 0);
  auto timed_out = std::async(std::launch::async, [&] {
    pollfd p{never, POLLIN, 0};
    return clock_.poll(&p, 1, t0 + 300ms);
  });
  ASSERT_TRUE(raw_.await_sleeper_until(t0 + 300ms));
  raw_.advance(10s);
  clock_.beat();
  ASSERT_TRUE(raw_.await_sleeper_until(t0 + 10s + 150ms)) << "the pause was charged";
  EXPECT_EQ(timed_out.wait_for(0s), std::future_status::timeout);
  run_for(150ms);
  ASSERT_EQ(timed_out.wait_for(kHang), std::future_status::ready);
  EXPECT_EQ(timed_out.get(), 0);

  // A descriptor that turns ready is reported as before.
  auto ready = std::async(std::launch::async, [&] {
    pollfd p{later, POLLIN, 0};
    return clock_.poll(&p, 1, clock_.now() + 1s);
  });
  const std::uint64_t one = 1;
  ASSERT_EQ(::write(later, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  ASSERT_EQ(ready.wait_for(kHang), std::future_status::ready);
  EXPECT_EQ(ready.get(), 1);
  ::close(never);
  ::close(later);
}

TEST(RunClock, TheHeartbeatThreadStartsAndStops) {
  RunClock clock(WaitClock::steady());
  clock.start();
  clock.start();  // once
  const auto before = clock.now();
  // A real wait of 200 ms of the run clock returns: the heartbeat moves it.
  pollfd none{-1, 0, 0};
  EXPECT_EQ(clock.poll(&none, 1, before + 200ms), 0);
  EXPECT_GE(clock.now(), before + 200ms);
  clock.stop();
}

}  // namespace
}  // namespace genomed
