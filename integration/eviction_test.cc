// The byte budget against the real daemon: LRU eviction of unleased adapters,
// never of leased ones, admission waits and typed refusals.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <thread>

#include "integration/daemon_fixture.h"
#include "integration/file_tensors.h"

namespace genomed::testing {
namespace {

std::string bytes_of(const TensorView& t) {
  return std::string(reinterpret_cast<const char*>(t.data.data()), t.data.size());
}

TEST(Eviction, PublishedMeansLeasedSoConcurrentColdAcquiresLoadEachAdapterOnce) {
  // 100 clients each acquire a different cold adapter at once; the budget
  // holds about a quarter of them. A load's waiter gets its lease in the
  // step that publishes the entry, so another load's reservation cannot
  // evict it before the waiter wakes (which used to reload adapters many
  // times over: 569-643 loads for 100 requests).
  constexpr int kClients = 100;
  Daemon daemon({.budget_bytes = 24ull << 20, .admission_timeout_ms = 30000});
  for (int i = 0; i < kClients; ++i)
    daemon.add_adapter("c" + std::to_string(i), megabyte_adapter(i));
  std::vector<Client> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(daemon.connect());
  std::barrier start(kClients);
  std::vector<std::string> errors(kClients);
  std::vector<std::uint64_t> bytes(kClients, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto lease = clients[i].acquire("c" + std::to_string(i));
      if (lease.ok()) {
        bytes[i] = lease->bytes().size();
      } else {
        errors[i] = lease.status().to_string();
      }
    });  // the lease ends with the thread's scope
  }
  for (auto& t : threads) t.join();
  std::uint64_t asked = 0;
  for (int i = 0; i < kClients; ++i) {
    EXPECT_TRUE(errors[i].empty()) << "c" << i << ": " << errors[i];
    asked += bytes[i];
  }
  // One completed load per request, and no more bytes copied than asked for.
  EXPECT_EQ(daemon.stat("loads_completed"), static_cast<std::uint64_t>(kClients));
  EXPECT_EQ(daemon.stat("bytes_loaded"), asked);
  EXPECT_GT(daemon.stat("evictions"), 0u) << "the budget must have been under pressure";
}

TEST(Eviction, SmallBudgetNeverEvictsALeasedAdapter) {
  Daemon daemon({.budget_bytes = 4ull << 20});
  for (int i = 0; i < 8; ++i) daemon.add_adapter("a" + std::to_string(i), megabyte_adapter(10 + i));
  const auto expected = read_file_tensors(daemon.root() + "/a0/adapter_model.safetensors");
  Client client = daemon.connect();
  auto pinned = client.acquire("a0");
  ASSERT_TRUE(pinned.ok());
  // Cycle the others through the remaining budget many times.
  for (int round = 0; round < 3; ++round) {
    for (int i = 1; i < 8; ++i) {
      auto lease = client.acquire("a" + std::to_string(i));
      ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    }
  }
  EXPECT_GT(daemon.stat("evictions"), 0u);
  EXPECT_LE(daemon.stat("bytes_resident"), 4ull << 20);
  // a0 stayed resident, under the same generation, with the file's bytes.
  auto list = client.list();
  ASSERT_TRUE(list.ok());
  bool found = false;
  for (const auto& a : *list) {
    if (a.name == "a0") {
      found = true;
      EXPECT_EQ(a.generation, pinned->generation());
      EXPECT_EQ(a.state, "ready");
    }
  }
  EXPECT_TRUE(found);
  for (const auto& t : pinned->tensors())
    EXPECT_EQ(bytes_of(t), expected.at(std::string(t.name)).bytes);
}

TEST(Eviction, LeastRecentlyUsedGoesFirst) {
  Daemon daemon({.budget_bytes = 4ull << 20});
  for (int i = 0; i < 4; ++i) daemon.add_adapter("l" + std::to_string(i), megabyte_adapter(20 + i));
  Client client = daemon.connect();
  ASSERT_TRUE(client.load("l0").ok());
  ASSERT_TRUE(client.load("l1").ok());
  ASSERT_TRUE(client.load("l2").ok());
  ASSERT_TRUE(client.acquire("l0").ok());  // l0 becomes most recently used
  ASSERT_TRUE(client.load("l3").ok());     // needs room: l1 is the LRU one
  auto list = client.list();
  ASSERT_TRUE(list.ok());
  std::vector<std::string> names;
  for (const auto& a : *list) names.push_back(a.name);
  EXPECT_EQ(names, (std::vector<std::string>{"l0", "l2", "l3"}));
}

TEST(Admission, EverythingLeasedFailsWithNoSpaceAfterTheTimeoutAndCreatesNothing) {
  Daemon daemon({.budget_bytes = 3ull << 20, .admission_timeout_ms = 300});
  for (int i = 0; i < 3; ++i) daemon.add_adapter("p" + std::to_string(i), megabyte_adapter(30 + i));
  Client client = daemon.connect();
  auto a = client.acquire("p0");
  auto b = client.acquire("p1");
  ASSERT_TRUE(a.ok() && b.ok());
  const auto resident = daemon.stat("bytes_resident");
  auto c = client.acquire("p2");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.code(), Errc::no_space) << c.status().to_string();
  EXPECT_EQ(daemon.stat("bytes_resident"), resident);
  EXPECT_EQ(daemon.stat("bytes_reserved"), 0u);
  auto list = client.list();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
}

TEST(Admission, ALoadWaitingForRoomProceedsWhenALeaseEnds) {
  Daemon daemon({.budget_bytes = 3ull << 20, .admission_timeout_ms = 20000});
  for (int i = 0; i < 3; ++i) daemon.add_adapter("w" + std::to_string(i), megabyte_adapter(40 + i));
  Client holder = daemon.connect();
  auto a = holder.acquire("w0");
  auto b = holder.acquire("w1");
  ASSERT_TRUE(a.ok() && b.ok());
  Client waiter = daemon.connect();
  Result<Lease> c = Status(Errc::internal, "not run");
  std::atomic<bool> done{false};
  std::thread t([&] {
    c = waiter.acquire("w2");
    done = true;
  });
  // It really waits for room: counted as waiting, nothing evicted, no answer.
  ASSERT_TRUE(eventually([&] { return daemon.stat("admission_waiting") == 1; }));
  EXPECT_FALSE(done);
  EXPECT_EQ(daemon.stat("evictions"), 0u);
  a->release();
  t.join();
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->name(), "w2");
}

TEST(Admission, AdapterLargerThanTheBudgetFailsAtOnce) {
  Daemon daemon({.budget_bytes = 2ull << 20, .admission_timeout_ms = 60000});
  daemon.add_adapter("huge", {.rank = 64, .layers = 8, .hidden = 1024});  // ~4 MiB
  Client client = daemon.connect();
  const auto start = std::chrono::steady_clock::now();
  auto r = client.acquire("huge");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::too_large) << r.status().to_string();
  // "At once" means it did not sit out the 60 s admission timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  EXPECT_EQ(daemon.stat("bytes_reserved"), 0u);
}

}  // namespace
}  // namespace genomed::testing
