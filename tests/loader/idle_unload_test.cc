// Idle unload in the coordinator, on the fake clock: an adapter nobody
// leases, pins or asks for during its keep-alive is unloaded by the idle
// checker; leases and pins keep it; a request's keep_alive overrides
// --idle-unload, 0 meaning never. The tests learn that the checker sleeps
// until an expiry from the clock itself (await_sleeper_until): no sleeps.
#include <gtest/gtest.h>

#include "tests/loader/coordinator_fixture.h"
#include "tools/testkit/eventually.h"

namespace genomed::loader {
namespace {

using genomed::testing::CoordinatorTest;
using genomed::testkit::eventually;
using namespace std::chrono_literals;

class IdleUnloadTest : public CoordinatorTest {
 protected:
  std::optional<ipc::AdapterStatus> entry(const std::string& name) {
    for (const auto& a : coordinator_->list().adapters) {
      if (a.name == name) return a;
    }
    return std::nullopt;
  }
  bool unloaded(const std::string& name) {
    return eventually([&] { return !resident(name); });
  }
};

TEST_F(IdleUnloadTest, AnUnusedAdapterIsUnloadedAfterTheIdleTime) {
  const std::uint64_t one = footprint();
  add("a", 1);
  start(4 * one, {.idle_unload = 30s});
  const auto t0 = clock_.now();
  ASSERT_TRUE(coordinator_->load("a").ok());
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 30s)) << "the checker waits for the expiry";
  auto a = entry("a");
  ASSERT_TRUE(a && a->expires_in_ms) << "LIST shows when it expires";
  EXPECT_EQ(*a->expires_in_ms, 30'000u);
  EXPECT_EQ(a->idle_ms, 0u);

  clock_.advance(29s);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 30s)) << "woken early, it waits again";
  a = entry("a");
  ASSERT_TRUE(a.has_value()) << "not yet";
  EXPECT_EQ(a->idle_ms, 29'000u);
  EXPECT_EQ(*a->expires_in_ms, 1'000u);

  clock_.advance(1s);
  ASSERT_TRUE(unloaded("a"));
  EXPECT_EQ(stat("idle_unloads"), 1u);
  EXPECT_EQ(stat("bytes_resident"), 0u);
  auto again = coordinator_->load("a");
  ASSERT_TRUE(again.ok()) << "an idle unload leaves nothing behind";
  EXPECT_FALSE(again->was_resident);
}

TEST_F(IdleUnloadTest, AnAliasIdlesAloneAndItsCopyStaysWhileTheOtherNameIsLeased) {
  const std::uint64_t one = footprint();
  add("a", 1);
  add("twin", 1);  // the same files: one copy (cache/shared_copies.h)
  start(4 * one, {.idle_unload = 30s});
  const auto t0 = clock_.now();
  auto lease = coordinator_->acquire({"a"}, 1);
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(coordinator_->load("twin").ok());
  EXPECT_EQ(stat("bytes_resident"), one);
  EXPECT_EQ(stat("loads_shared"), 1u);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 30s));
  clock_.advance(30s);
  ASSERT_TRUE(unloaded("twin")) << "its own keep-alive, though a's lease holds the copy";
  EXPECT_TRUE(resident("a"));
  EXPECT_EQ(stat("bytes_resident"), one) << "a's lease keeps the bytes";
  EXPECT_EQ(stat("idle_unloads"), 1u);
  ASSERT_TRUE(coordinator_->release(lease->grants[0].lease, 1));
}

TEST_F(IdleUnloadTest, ALeasedAdapterIsNeverUnloadedItsIdleTimeStartsWhenItsLeaseEnds) {
  const std::uint64_t one = footprint();
  for (const char* name : {"leased", "free"}) add(name, name[0]);
  start(4 * one, {.idle_unload = 30s});
  const auto t0 = clock_.now();
  auto lease = coordinator_->acquire({"leased"}, 1);
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(coordinator_->load("free").ok());
  EXPECT_FALSE(entry("leased")->expires_in_ms.has_value()) << "a leased adapter never expires";
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 30s));
  clock_.advance(1h);
  ASSERT_TRUE(unloaded("free")) << "the checker ran";
  EXPECT_TRUE(resident("leased")) << "and kept the leased one";
  EXPECT_EQ(stat("idle_unloads"), 1u);

  const auto released_at = clock_.now();
  ASSERT_TRUE(coordinator_->release(lease->grants[0].lease, 1));
  ASSERT_TRUE(clock_.await_sleeper_until(released_at + 30s)) << "its idle time starts now";
  clock_.advance(30s);
  ASSERT_TRUE(unloaded("leased"));
  EXPECT_EQ(stat("idle_unloads"), 2u);
}

TEST_F(IdleUnloadTest, AKeepAliveOverridesTheDefaultAndZeroMeansNever) {
  const std::uint64_t one = footprint();
  for (const char* name : {"short", "never", "default", "long"}) add(name, name[0]);
  start(8 * one);  // --idle-unload off
  const auto t0 = clock_.now();
  ASSERT_TRUE(coordinator_->load("short", 0, nullptr, {.keep_alive = 10s}).ok());
  ASSERT_TRUE(coordinator_->load("never", 0, nullptr, {.keep_alive = 0ms}).ok());
  ASSERT_TRUE(coordinator_->load("default").ok());
  ASSERT_TRUE(coordinator_->acquire({"long"}, 1, nullptr, {.keep_alive = 2h}).ok());
  EXPECT_FALSE(entry("never")->expires_in_ms.has_value());
  EXPECT_FALSE(entry("default")->expires_in_ms.has_value()) << "--idle-unload is off";
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 10s));
  clock_.advance(10s);
  ASSERT_TRUE(unloaded("short"));
  EXPECT_TRUE(resident("long")) << "leased";
  coordinator_->release_all(1);
  const auto released_at = clock_.now();
  ASSERT_TRUE(clock_.await_sleeper_until(released_at + 2h));
  clock_.advance(2h);
  ASSERT_TRUE(unloaded("long"));
  EXPECT_TRUE(resident("never"));
  EXPECT_TRUE(resident("default"));
  // A request without keep_alive leaves an adapter's own as it is.
  ASSERT_TRUE(coordinator_->load("never").ok());
  EXPECT_FALSE(entry("never")->expires_in_ms.has_value());
}

TEST_F(IdleUnloadTest, EveryUseRestartsTheIdleTime) {
  const std::uint64_t one = footprint();
  add("a", 1);
  start(4 * one, {.idle_unload = 30s});
  const auto t0 = clock_.now();
  ASSERT_TRUE(coordinator_->load("a").ok());
  clock_.advance(20s);
  auto hit = coordinator_->acquire({"a"}, 1);  // a use: a lease
  ASSERT_TRUE(hit.ok());
  ASSERT_TRUE(coordinator_->release(hit->grants[0].lease, 1));  // its idle time starts again
  // The checker may still sleep towards the first expiry (t0 + 30 s): a use
  // only moves an expiry later, which needs no wake-up. Whenever it looks
  // from now on, the clock reads t0 + 30 s or more and the release is done.
  clock_.advance(10s);  // t0 + 30 s: the first expiry, passed over
  // Sleeping towards the new expiry in a wait begun after that advance: it
  // looked at t0 + 30 s and left 'a' resident.
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 50s));
  EXPECT_TRUE(resident("a"));
  clock_.advance(20s);
  ASSERT_TRUE(unloaded("a"));
}

TEST_F(IdleUnloadTest, APinnedAdapterIsNeverUnloadedForIdleness) {
  const std::uint64_t one = footprint();
  for (const char* name : {"pinned", "free"}) add(name, name[0]);
  start(4 * one, {.idle_unload = 30s});
  const auto t0 = clock_.now();
  ASSERT_TRUE(coordinator_->pin("pinned").ok());
  ASSERT_TRUE(coordinator_->load("free").ok());
  EXPECT_FALSE(entry("pinned")->expires_in_ms.has_value());
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 30s));
  clock_.advance(1h);
  ASSERT_TRUE(unloaded("free"));
  EXPECT_TRUE(resident("pinned"));
  const auto unpinned_at = clock_.now();
  ASSERT_TRUE(coordinator_->unpin("pinned").ok());
  ASSERT_TRUE(clock_.await_sleeper_until(unpinned_at + 30s)) << "idle from its unpin";
  clock_.advance(30s);
  ASSERT_TRUE(unloaded("pinned"));
}

}  // namespace
}  // namespace genomed::loader
