// A load's fill progress in LIST: the total once probed, the bytes of the
// completed fill parts, nothing once READY. On the fake runner, whose fills
// the test holds; no sleeps.
#include <gtest/gtest.h>

#include "tests/loader/coordinator_fixture.h"

namespace genomed::loader {
namespace {

using genomed::testing::Async;
using genomed::testing::CoordinatorTest;
using Kind = jobs::JobKind;

using LoadProgressTest = CoordinatorTest;

TEST_F(LoadProgressTest, ListShowsALoadingEntrysFillProgress) {
  const std::uint64_t one = footprint();
  add("a", 1);
  start(4 * one);
  runner_->hold(Kind::fill);
  Async<Result<ipc::LoadReply>> load([&] { return coordinator_->load("a", 1); });
  ASSERT_TRUE(runner_->await_started(Kind::fill, 1));
  auto list = coordinator_->list();
  ASSERT_EQ(list.adapters.size(), 1u);
  EXPECT_EQ(list.adapters[0].state, "loading");
  EXPECT_GT(list.adapters[0].fill_total, 0u) << "probed: its size is known";
  EXPECT_LE(list.adapters[0].fill_total, one);
  EXPECT_EQ(list.adapters[0].filled, 0u) << "its one part is still held";
  runner_->let_go(Kind::fill);
  ASSERT_TRUE(load.get().ok()) << load.get().status().to_string();
  list = coordinator_->list();
  ASSERT_EQ(list.adapters.size(), 1u);
  EXPECT_EQ(list.adapters[0].state, "ready");
  EXPECT_EQ(list.adapters[0].fill_total, 0u) << "progress is shown while loading only";
}

TEST_F(LoadProgressTest, AnEntryNotYetProbedShowsNoTotal) {
  const std::uint64_t one = footprint();
  add("a", 1);
  start(4 * one);
  runner_->hold(Kind::probe);
  Async<Result<ipc::LoadReply>> load([&] { return coordinator_->load("a", 1); });
  ASSERT_TRUE(runner_->await_started(Kind::probe, 1));
  const auto list = coordinator_->list();
  ASSERT_EQ(list.adapters.size(), 1u);
  EXPECT_EQ(list.adapters[0].fill_total, 0u);
  runner_->let_go(Kind::probe);
  ASSERT_TRUE(load.get().ok());
}

}  // namespace
}  // namespace genomed::loader
