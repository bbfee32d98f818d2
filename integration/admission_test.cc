// Admission against the real daemon: a batch reserves all the room it needs
// at once or holds nothing while it waits (no hold-and-wait), and waiters are
// served in arrival order.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <thread>

#include "integration/daemon_fixture.h"

namespace genomed::testing {
namespace {

// ~1 MiB adapters (see eviction_test.cc): a 3 MiB budget holds two.
fixture::AdapterSpec megabyte(std::uint64_t seed) {
  return {.rank = 64, .layers = 2, .hidden = 1024, .dtype = layout::DType::F16, .seed = seed};
}

// The tracker's case: two clients each acquire two adapters in one batch
// ([a, b] and [c, d]) with room for two. Taking leases one by one, each
// could hold one adapter while waiting for room held by the other, until
// the admission timeout (6 failures in 10). Reserved as a whole, one batch
// goes first and the other follows once its leases end, every time.
TEST(AdmissionBatch, TwoBatchesOfTwoWithRoomForTwoBothSucceedEveryRound) {
  Daemon daemon({.budget_bytes = 3ull << 20, .admission_timeout_ms = 60000});
  const std::vector<std::string> first{"a", "b"};
  const std::vector<std::string> second{"c", "d"};
  std::uint64_t seed = 1;
  for (const auto& name : {"a", "b", "c", "d"}) daemon.add_adapter(name, megabyte(seed++));
  Client one = daemon.connect();
  Client two = daemon.connect();
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    std::barrier start(2);
    Status s1, s2;
    auto run = [&](Client& client, const std::vector<std::string>& names, Status* out) {
      start.arrive_and_wait();
      auto leases = client.acquire(names);
      if (!leases.ok()) {
        *out = leases.status();
        return;
      }
      // Held while checked, then released: the other batch follows.
      if (leases->size() != names.size()) *out = Status(Errc::internal, "wrong lease count");
      for (auto& lease : *leases) lease.release();
    };
    std::thread t1(run, std::ref(one), first, &s1);
    std::thread t2(run, std::ref(two), second, &s2);
    t1.join();
    t2.join();
    EXPECT_TRUE(s1.ok()) << "round " << round << ": " << s1.to_string();
    EXPECT_TRUE(s2.ok()) << "round " << round << ": " << s2.to_string();
  }
  // Never more than the budget, and nothing left leased (RELEASE has no
  // reply: the last ones may still be on their way).
  EXPECT_TRUE(eventually([&] { return daemon.stat("leases_active") == 0; }));
  EXPECT_LE(daemon.stat("bytes_resident"), 3ull << 20);
}

// Strict arrival order: a large adapter waiting for room is not passed by
// small ones that would fit, so it is served as soon as room frees, however
// many small ones keep arriving.
TEST(AdmissionOrder, ALargeAdapterIsServedBeforeSmallOnesThatArrivedLater) {
  constexpr std::uint64_t kBudget = (4ull << 20) + (256ull << 10);
  Daemon daemon({.budget_bytes = kBudget, .admission_timeout_ms = 60000});
  for (int i = 0; i < 3; ++i) daemon.add_adapter("held" + std::to_string(i), megabyte(10 + i));
  daemon.add_adapter("large", {.rank = 64,
                               .layers = 5,
                               .hidden = 1024,
                               .dtype = layout::DType::F16,
                               .seed = 20});  // ~2.5 MiB
  for (int i = 0; i < 4; ++i) daemon.add_adapter("small" + std::to_string(i), megabyte(30 + i));
  Client holder = daemon.connect();
  std::vector<Lease> held;
  for (int i = 0; i < 3; ++i) {
    auto lease = holder.acquire("held" + std::to_string(i));
    ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    held.push_back(std::move(*lease));
  }
  // About 1.2 MiB is free: too little for "large", enough for one small one
  // (as large as a held one).
  const std::uint64_t footprint = daemon.stat("bytes_resident") / 3;
  ASSERT_GT(kBudget - daemon.stat("bytes_resident"), footprint);
  Client large_client = daemon.connect();
  Result<Lease> large = Status(Errc::internal, "not run");
  std::thread large_thread([&] { large = large_client.acquire("large"); });
  ASSERT_TRUE(eventually([&] { return daemon.stat("admission_waiting") == 1; }));

  // A stream of small ones arrives after it. Each would fit in the free
  // MiB, but waits behind the large one.
  std::vector<Client> small_clients;
  std::vector<Result<Lease>> small;
  for (int i = 0; i < 4; ++i) small.emplace_back(Status(Errc::internal, "not run"));
  std::vector<std::thread> small_threads;
  for (int i = 0; i < 4; ++i) small_clients.push_back(daemon.connect());
  std::atomic<int> small_done{0};
  for (int i = 0; i < 4; ++i) {
    small_threads.emplace_back([&, i] {
      small[i] = small_clients[i].acquire("small" + std::to_string(i));
      if (small[i].ok()) small[i]->release();
      ++small_done;
    });
  }
  ASSERT_TRUE(eventually([&] { return daemon.stat("admission_waiting") == 5; }))
      << "the small adapters did not all queue behind the large one";
  EXPECT_EQ(small_done.load(), 0);
  EXPECT_EQ(daemon.stat("evictions"), 0u);

  // Room frees: the large one goes first.
  for (auto& lease : held) lease.release();
  large_thread.join();
  ASSERT_TRUE(large.ok()) << large.status().to_string();
  for (auto& t : small_threads) t.join();
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(small[i].ok()) << small[i].status().to_string();
}

}  // namespace
}  // namespace genomed::testing
