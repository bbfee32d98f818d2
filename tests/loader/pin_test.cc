// PIN and UNPIN in the coordinator: pinned adapters are never evicted, count
// against the pin budget, refuse UNLOAD, and free their room for waiting
// requests when unpinned. On the fake clock; no sleeps.
#include <gtest/gtest.h>

#include "tests/loader/coordinator_fixture.h"

namespace genomed::testing {
namespace {

using namespace std::chrono_literals;

using PinTest = CoordinatorTest;

TEST_F(PinTest, APinnedAdapterIsNeverEvicted) {
  const std::uint64_t one = start_with({"a", "b", "c"}, 2);
  auto pinned = coordinator_->pin("a");
  ASSERT_TRUE(pinned.ok()) << pinned.status().to_string();
  EXPECT_TRUE(pinned->pinned);
  EXPECT_FALSE(pinned->was_pinned);
  EXPECT_GT(pinned->bytes, 0u);
  ASSERT_TRUE(coordinator_->load("b").ok());
  ASSERT_TRUE(coordinator_->load("c").ok()) << "'b' makes room, not the older 'a'";
  const auto list = coordinator_->list();
  ASSERT_EQ(list.adapters.size(), 2u);
  EXPECT_EQ(list.adapters[0].name, "a");
  EXPECT_TRUE(list.adapters[0].pinned);
  EXPECT_EQ(list.adapters[1].name, "c");
  EXPECT_FALSE(list.adapters[1].pinned);
  EXPECT_EQ(stat("adapters_pinned"), 1u);
  EXPECT_EQ(stat("bytes_pinned"), one);
  EXPECT_EQ(stat("evictions"), 1u);
}

TEST_F(PinTest, PinningPastThePinBudgetIsTypedAndLeavesTheAdapterResident) {
  const std::uint64_t one = footprint();  // the pin budget is counted in it too
  for (const char* name : {"a", "b"}) add(name, name[0]);
  start(4 * one, {.pin_budget = one});
  ASSERT_TRUE(coordinator_->pin("a").ok());
  auto b = coordinator_->pin("b");
  ASSERT_EQ(b.code(), Errc::pin_budget_exceeded) << b.status().to_string();
  EXPECT_NE(b.status().message().find("--pin-budget"), std::string::npos) << b.status().message();
  const auto list = coordinator_->list();
  ASSERT_EQ(list.adapters.size(), 2u) << "the load of 'b' is kept, unpinned";
  EXPECT_FALSE(list.adapters[1].pinned);
  auto again = coordinator_->pin("a");
  ASSERT_TRUE(again.ok()) << "pinning a pinned adapter is a no-op, within any budget";
  EXPECT_TRUE(again->was_pinned);
  ASSERT_TRUE(coordinator_->unpin("a").ok());
  EXPECT_TRUE(coordinator_->pin("b").ok()) << "unpinning made room in the pin budget";
}

TEST_F(PinTest, PinsOfTheWholeBudgetLeaveNoRoomAndSaySo) {
  start_with({"a", "b"}, 1, {.admission_timeout = 10s});
  ASSERT_TRUE(coordinator_->pin("a").ok());
  Async<Result<ipc::LoadReply>> b([&] { return coordinator_->load("b", 2); });
  ASSERT_TRUE(clock_.await_sleeper_until(clock_.now() + 10s));
  clock_.advance(10s);
  ASSERT_EQ(b.get().code(), Errc::no_space) << b.get().status().to_string();
  EXPECT_NE(b.get().status().message().find("pinned"), std::string::npos)
      << b.get().status().message();
}

TEST_F(PinTest, UnloadRefusesAPinnedAdapterUntilUnpinned) {
  start_with({"a"}, 2);
  ASSERT_TRUE(coordinator_->pin("a").ok());
  auto refused = coordinator_->unload("a");
  ASSERT_EQ(refused.code(), Errc::pinned) << refused.status().to_string();
  EXPECT_NE(refused.status().message().find("unpin"), std::string::npos);
  auto unpinned = coordinator_->unpin("a");
  ASSERT_TRUE(unpinned.ok()) << unpinned.status().to_string();
  EXPECT_TRUE(unpinned->was_pinned);
  EXPECT_FALSE(unpinned->pinned);
  auto again = coordinator_->unpin("a");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->was_pinned) << "unpinning an unpinned adapter is a no-op";
  auto freed = coordinator_->unload("a");
  ASSERT_TRUE(freed.ok()) << freed.status().to_string();
  EXPECT_EQ(freed->outcome, "freed");
  EXPECT_EQ(coordinator_->unpin("a").code(), Errc::not_loaded);
  EXPECT_EQ(coordinator_->unpin("../x").code(), Errc::invalid_name);
}

TEST_F(PinTest, UnpinningServesARequestWaitingForRoom) {
  start_with({"a", "b"}, 1, {.admission_timeout = 60s});
  ASSERT_TRUE(coordinator_->pin("a").ok());
  Async<Result<ipc::AcquireReply>> b([&] { return coordinator_->acquire({"b"}, 2); });
  ASSERT_TRUE(clock_.await_sleeper_until(clock_.now() + 60s));  // waits on its ticket
  ASSERT_TRUE(coordinator_->unpin("a").ok());
  ASSERT_TRUE(b.get().ok()) << b.get().status().to_string();
  const auto list = coordinator_->list();
  ASSERT_EQ(list.adapters.size(), 1u);
  EXPECT_EQ(list.adapters[0].name, "b");
}

TEST_F(PinTest, ALeasedAdapterCanBePinnedAndStaysPinnedAfterItsLease) {
  start_with({"a", "b"}, 1, {.admission_timeout = 10s});
  auto lease = coordinator_->acquire({"a"}, 1);
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(coordinator_->pin("a", 2).ok());
  ASSERT_TRUE(coordinator_->release(lease->grants[0].lease, 1));
  Async<Result<ipc::LoadReply>> b([&] { return coordinator_->load("b", 3); });
  ASSERT_TRUE(clock_.await_sleeper_until(clock_.now() + 10s));
  clock_.advance(10s);
  EXPECT_EQ(b.get().code(), Errc::no_space) << "the pin outlived the lease";
  EXPECT_TRUE(coordinator_->list().adapters.at(0).pinned);
}

}  // namespace
}  // namespace genomed::testing
