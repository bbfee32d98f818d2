// Lease slots in the coordinator, on the fake clock (the contract:
// layout/lease_slot.h; the daemon's side: loader/lease_slots.h). The slot's
// word is moved here as the client library moves it.
#include "loader/lease_slots.h"

#include <gtest/gtest.h>

#include "tests/loader/coordinator_fixture.h"
#include "tools/testkit/eventually.h"

namespace genomed::loader {
namespace {

using genomed::testing::CoordinatorTest;
using genomed::testkit::eventually;
using namespace std::chrono_literals;
namespace w = layout::slot_word;

class LeaseSlotsTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorTest::SetUp();
    auto made = LeaseSlotPage::create(4);
    ASSERT_TRUE(made.ok()) << made.status().to_string();
    page_ = std::move(made).value();
  }
  // ACQUIRE of `name` by connection 7 with the page: its grant, which must
  // hold the lease through a slot.
  ipc::LeaseGrant acquire_through_slot(const std::string& name) {
    auto acquired = coordinator_->acquire({name}, 7, nullptr, {}, page_);
    EXPECT_TRUE(acquired.ok()) << acquired.status().to_string();
    if (!acquired.ok()) return {};
    EXPECT_TRUE(acquired->grants.at(0).slot.has_value()) << "no slot granted";
    return acquired->grants.at(0);
  }
  std::shared_ptr<LeaseSlotPage> page_;
};

TEST_F(LeaseSlotsTest, ABusySlotPastItsExpiryIsWantedAndTheCheckerWaitsForTheNextOne) {
  const std::uint64_t one = footprint();
  add("a", 1);
  start(4 * one, {.idle_unload = 30s});
  const auto t0 = clock_.now();
  const ipc::LeaseGrant g = acquire_through_slot("a");
  ASSERT_TRUE(g.slot.has_value());
  layout::LeaseSlot& slot = page_->slot(*g.slot);
  EXPECT_EQ(w::count(slot.word.load()), 1u) << "the granting lease is held through the slot";
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 30s)) << "held only by its slot: it may expire";

  // At the expiry the slot is busy: wanted back, not unloaded, and the
  // checker sleeps until the next expiry (it used to loop on the past one).
  clock_.advance(30s);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 60s));
  EXPECT_TRUE(resident("a"));
  EXPECT_TRUE(w::wanted(slot.word.load()));
  EXPECT_FALSE(layout::take_slot_lease(slot, g.slot_tag)) << "a wanted slot takes nothing";

  // The client's last give-back revokes it and sends RELEASE.
  ASSERT_EQ(layout::give_back_slot_lease(slot, g.slot_tag), layout::GiveBack::notify);
  const auto released_at = clock_.now();
  ASSERT_TRUE(coordinator_->release(g.lease, 7));
  EXPECT_EQ(stat("lease_slots"), 0u);
  ASSERT_TRUE(clock_.await_sleeper_until(released_at + 30s)) << "its idle time starts now";
  clock_.advance(30s);
  EXPECT_TRUE(eventually([&] { return !resident("a"); }));
  EXPECT_EQ(stat("idle_unloads"), 1u);
}

TEST_F(LeaseSlotsTest, AnIdleSlotUsedSinceTheLastLookIsNotIdle) {
  const std::uint64_t one = footprint();
  add("a", 1);
  start(4 * one, {.idle_unload = 30s});
  const auto t0 = clock_.now();
  const ipc::LeaseGrant g = acquire_through_slot("a");
  ASSERT_TRUE(g.slot.has_value());
  layout::LeaseSlot& slot = page_->slot(*g.slot);
  ASSERT_EQ(layout::give_back_slot_lease(slot, g.slot_tag), layout::GiveBack::kept);
  ASSERT_TRUE(layout::take_slot_lease(slot, g.slot_tag));  // used without a message
  ASSERT_EQ(layout::give_back_slot_lease(slot, g.slot_tag), layout::GiveBack::kept);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 30s));
  clock_.advance(30s);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 60s)) << "its use restarted the idle time";
  EXPECT_TRUE(resident("a"));
  EXPECT_FALSE(w::revoked(slot.word.load()) || w::wanted(slot.word.load()));
  clock_.advance(30s);  // no use since: revoked, its lease ended, unloaded
  EXPECT_TRUE(eventually([&] { return !resident("a"); }));
  EXPECT_TRUE(w::revoked(slot.word.load()));
  EXPECT_EQ(stat("lease_slots"), 0u);
  EXPECT_EQ(stat("slot_hits"), 1u);
}

TEST_F(LeaseSlotsTest, NoSlotIsGrantedAfterTheDrainRevokedThem) {
  const std::uint64_t one = footprint();
  add("a", 1);
  add("b", 2);
  start(4 * one);
  const ipc::LeaseGrant g = acquire_through_slot("a");
  ASSERT_TRUE(g.slot.has_value());
  ASSERT_EQ(layout::give_back_slot_lease(page_->slot(*g.slot), g.slot_tag),
            layout::GiveBack::kept);
  EXPECT_EQ(stat("lease_slots"), 1u);
  coordinator_->revoke_lease_slots();
  EXPECT_EQ(stat("lease_slots"), 0u) << "an idle slot ends at once";
  // An ACQUIRE admitted before the drain refused new ones still finishes:
  // with an ordinary lease, whose RELEASE the drain hears.
  auto late = coordinator_->acquire({"b"}, 7, nullptr, {}, page_);
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(late->grants.at(0).slot.has_value());
}

// "Leases" has one meaning wherever a number is reported: the leases the
// clients hold, a slot counting what is taken through it (its granting
// lease is one of those while the client has not given it back). UNLOAD's
// reply and the draining error used the cache's count (one per slot).
TEST_F(LeaseSlotsTest, EveryReportedLeaseCountIsWhatTheClientsHold) {
  const std::uint64_t one = footprint();
  add("a", 1);
  start(4 * one);
  const ipc::LeaseGrant g = acquire_through_slot("a");
  ASSERT_TRUE(g.slot.has_value());
  layout::LeaseSlot& slot = page_->slot(*g.slot);
  ASSERT_TRUE(layout::take_slot_lease(slot, g.slot_tag));
  ASSERT_TRUE(layout::take_slot_lease(slot, g.slot_tag));  // 3 through the slot
  ASSERT_TRUE(coordinator_->acquire({"a"}, 8).ok());        // and 1 ordinary one
  const auto listed = [&] { return coordinator_->list().adapters.at(0).leases; };
  EXPECT_EQ(listed(), 4u);
  EXPECT_EQ(stat("leases_active"), 4u);

  auto unloaded = coordinator_->unload("a");
  ASSERT_TRUE(unloaded.ok()) << unloaded.status().to_string();
  EXPECT_EQ(unloaded->outcome, "draining");
  EXPECT_EQ(unloaded->leases, 4u) << "the busy slot is wanted back, its 3 leases still held";
  EXPECT_EQ(listed(), 4u);
  EXPECT_EQ(stat("leases_active"), 4u);
  auto again = coordinator_->unload("a");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->leases, 4u);
  auto refused = coordinator_->acquire({"a"}, 9);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Errc::draining);
  EXPECT_NE(refused.status().message().find("its 4 lease(s)"), std::string::npos)
      << refused.status().message();
}

}  // namespace
}  // namespace genomed::loader
