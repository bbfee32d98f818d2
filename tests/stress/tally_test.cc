// A run that executed no operation tested nothing: its tally records an
// empty_run failure, so the verdict is FAIL; one operation is enough.
#include "tools/stress/tally.h"

#include <gtest/gtest.h>

namespace genomed::stress {
namespace {

TEST(StressTally, ARunWithNoOperationFails) {
  Tally tally;
  tally.fail_if_nothing_ran(0.3);
  EXPECT_EQ(tally.failures(Failure::empty_run), 1u);
  EXPECT_EQ(tally.failures_total(), 1u);
  ASSERT_EQ(tally.failure_details().size(), 1u);
  EXPECT_NE(tally.failure_details()[0].find("no operation ran in 0.3 s"), std::string::npos)
      << tally.failure_details()[0];
  EXPECT_STREQ(failure_name(Failure::empty_run), "empty_run");
}

TEST(StressTally, ARunWithOneOperationIsNotEmpty) {
  Tally tally;
  tally.ops_total.fetch_add(1);
  tally.fail_if_nothing_ran(0.3);
  EXPECT_EQ(tally.failures_total(), 0u);
}

}  // namespace
}  // namespace genomed::stress
