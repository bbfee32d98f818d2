// Singleflight and load/unload races against the real daemon.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <barrier>
#include <thread>

#include "integration/daemon_fixture.h"

namespace genomed::testing {
namespace {

TEST(Singleflight, HundredConcurrentAcquiresOfOneColdAdapterLoadItOnce) {
  Daemon daemon({.budget_bytes = 256ull << 20});
  // ~32 MiB: large enough that the load takes a while and requests overlap.
  daemon.add_adapter("hot",
                     {.rank = 64, .layers = 16, .hidden = 2048, .dtype = layout::DType::F16});
  constexpr int kClients = 100;
  std::vector<Client> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(daemon.connect());
  std::barrier start(kClients);
  std::vector<std::uint64_t> generations(kClients, 0);
  std::vector<std::string> errors(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto lease = clients[i].acquire("hot");
      if (lease.ok())
        generations[i] = lease->generation();
      else
        errors[i] = lease.status().to_string();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_TRUE(errors[i].empty()) << errors[i];
    EXPECT_EQ(generations[i], generations[0]);
  }
  EXPECT_EQ(daemon.stat("loads_started"), 1u);
  EXPECT_EQ(daemon.stat("loads_completed"), 1u);
  EXPECT_EQ(daemon.stat("hits") + daemon.stat("misses"), static_cast<std::uint64_t>(kClients));
}

TEST(Cancellation, UnloadDuringLoadCancelsItsWaitersAndLeavesNothing) {
  // The worker hangs in the probe of this adapter (test-only fault), so the
  // load is reliably in flight when the unload arrives.
  Daemon daemon({.load_timeout_ms = 60000, .extra_args = {"--worker-fault", "hang@probe:stuck"}});
  daemon.add_adapter("stuck", {});

  Client waiter = daemon.connect();
  Result<Lease> result = Status(Errc::internal, "not run");
  std::thread t([&] { result = waiter.acquire("stuck"); });
  Client control = daemon.connect();
  ASSERT_TRUE(eventually([&] {
    auto list = control.list();
    return list.ok() && list->size() == 1 && (*list)[0].state == "loading";
  }));
  auto unloaded = control.unload("stuck");
  ASSERT_TRUE(unloaded.ok()) << unloaded.status().to_string();
  EXPECT_EQ(unloaded->outcome, "cancelled");
  t.join();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.code(), Errc::cancelled);
  auto list = control.list();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
  EXPECT_EQ(daemon.stat("bytes_resident"), 0u);
  // Other adapters still load on the remaining worker meanwhile.
  daemon.add_adapter("other", {});
  EXPECT_TRUE(control.acquire("other").ok());
}

TEST(Cancellation, RepeatedUnloadReloadNeverLeavesTwoCopies) {
  Daemon daemon;
  daemon.add_adapter("flip", {.rank = 16, .layers = 4, .hidden = 256});
  Client a = daemon.connect();
  Client b = daemon.connect();
  std::atomic<bool> stop{false};
  std::thread unloader([&] {
    while (!stop) (void)b.unload("flip");
  });
  for (int i = 0; i < 200; ++i) {
    auto lease = a.acquire("flip");
    if (!lease.ok()) {
      EXPECT_TRUE(lease.code() == Errc::cancelled || lease.code() == Errc::draining)
          << lease.status().to_string();
      continue;
    }
    // While we hold a lease, the listed copies of the name are exactly one.
    auto list = a.list();
    ASSERT_TRUE(list.ok());
    ASSERT_EQ(list->size(), 1u);
  }
  stop = true;
  unloader.join();
  (void)b.unload("flip");
  ASSERT_TRUE(eventually(
      [&] { return daemon.stat("bytes_resident") == 0 && daemon.stat("bytes_reserved") == 0; }));
}

}  // namespace
}  // namespace genomed::testing
