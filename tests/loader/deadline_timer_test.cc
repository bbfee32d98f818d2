// DeadlineTimer: the keys whose time has come, earliest first; the others
// stay for later.
#include "loader/deadline_timer.h"

#include <gtest/gtest.h>

#include <chrono>

namespace genomed::loader {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

TEST(DeadlineTimer, TakesOnlyTheDueKeysEarliestFirst) {
  DeadlineTimer timer;
  ASSERT_TRUE(timer.open().ok());
  const auto now = DeadlineTimer::Clock::now();
  timer.schedule(now + hours(1), 1);
  timer.schedule(now - seconds(1), 2);
  timer.schedule(now - seconds(2), 3);
  EXPECT_EQ(timer.take_due(), (std::vector<std::uint64_t>{3, 2}));
  EXPECT_TRUE(timer.take_due().empty()) << "key 1 is an hour away";
  timer.schedule(now - seconds(3), 4);
  EXPECT_EQ(timer.take_due(), (std::vector<std::uint64_t>{4}));
}

}  // namespace
}  // namespace genomed::loader
