// Prefetch in the coordinator: a low-priority LOAD that takes free room
// only. It never evicts (every resident adapter was used more recently than
// one not loaded yet; leased and pinned ones are never evicted anyway),
// never waits for room nor passes requests that do, and is dropped with
// prefetch_dropped when it cannot fit. On the fake clock; no sleeps.
#include <gtest/gtest.h>

#include "tests/loader/coordinator_fixture.h"

namespace genomed::testing {
namespace {

using namespace std::chrono_literals;

using PrefetchTest = CoordinatorTest;

const loader::RequestOptions kPrefetch{.prefetch = true};

std::string names(const ipc::ListReply& r) {
  std::string out;
  for (const auto& a : r.adapters) out += a.name;
  return out;
}

TEST_F(PrefetchTest, APrefetchLoadsIntoFreeRoomAndAResidentOneIsAHit) {
  start_with({"a", "b"}, 2);
  ASSERT_TRUE(coordinator_->load("a").ok());
  auto b = coordinator_->load("b", 0, nullptr, kPrefetch);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_FALSE(b->was_resident);
  EXPECT_EQ(names(coordinator_->list()), "ab");
  auto again = coordinator_->load("b", 0, nullptr, kPrefetch);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->was_resident);
  EXPECT_EQ(stat("prefetches_dropped"), 0u);
}

TEST_F(PrefetchTest, APrefetchNeverEvictsAndIsDroppedAtOnceWhenItCannotFit) {
  start_with({"a", "b"}, 1, {.admission_timeout = 60s});
  ASSERT_TRUE(coordinator_->load("a").ok());  // unleased: a LOAD would evict it
  auto b = coordinator_->load("b", 0, nullptr, kPrefetch);  // no clock move: it never waits
  ASSERT_EQ(b.code(), Errc::prefetch_dropped) << b.status().to_string();
  EXPECT_NE(b.status().message().find("free room"), std::string::npos) << b.status().message();
  EXPECT_EQ(names(coordinator_->list()), "a") << "nothing evicted, nothing left behind";
  EXPECT_EQ(stat("evictions"), 0u);
  EXPECT_EQ(stat("prefetches_dropped"), 1u);
  EXPECT_EQ(stat("admission_waiting"), 0u);
  EXPECT_EQ(stat("bytes_reserved"), 0u);
  ASSERT_TRUE(coordinator_->load("b").ok()) << "a plain LOAD still evicts";
  EXPECT_EQ(names(coordinator_->list()), "b");
}

TEST_F(PrefetchTest, APrefetchNeverPassesRequestsWaitingForRoom) {
  start_with({"a", "b", "c"}, 3, {.admission_timeout = 60s});
  // "a" and "b" leased leave room for one more; "big" (rank 16) needs about
  // twice that and waits for room. "c" would fit in what is free, but a
  // prefetch does not take room from under a waiting request.
  auto held = coordinator_->acquire({"a", "b"}, 1);
  ASSERT_TRUE(held.ok()) << held.status().to_string();
  add("big", 7, /*rank=*/16);
  const auto t0 = clock_.now();
  Async<Result<ipc::LoadReply>> waiting([&] { return coordinator_->load("big", 2); });
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 60s));  // on its ticket
  ASSERT_EQ(stat("admission_waiting"), 1u);
  auto c = coordinator_->load("c", 3, nullptr, kPrefetch);
  ASSERT_EQ(c.code(), Errc::prefetch_dropped) << c.status().to_string();
  EXPECT_NE(c.status().message().find("wait for room"), std::string::npos) << c.status().message();
  coordinator_->release_all(1);
  ASSERT_TRUE(waiting.get().ok()) << waiting.get().status().to_string();
}

}  // namespace
}  // namespace genomed::testing
