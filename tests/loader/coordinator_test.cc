// The coordinator on a fake clock and an in-process job runner: admission,
// batches, cancellation and the one-load-per-name rule, with every deadline
// driven by FakeWaitClock::advance (no real waiting, no sleeps).
#include "loader/coordinator.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <thread>

#include "tests/loader/fake_clock.h"
#include "tests/loader/fake_runner.h"
#include "tools/fixture/fixture.h"

namespace genomed::loader {
namespace {

using genomed::testing::FakeRunner;
using genomed::testing::FakeWaitClock;
using Kind = jobs::JobKind;
using namespace std::chrono_literals;

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/genomed-coordinator-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    if (coordinator_) coordinator_->shutdown();
    std::filesystem::remove_all(root_);
  }

  void add(const std::string& name, std::uint64_t seed) {
    ASSERT_TRUE(fixture::write_adapter(root_ + "/" + name,
                                       {.rank = 8, .layers = 2, .hidden = 256, .seed = seed})
                    .ok());
  }
  // Bytes one of those adapters occupies in the arena (page-rounded).
  std::uint64_t footprint() {
    add("probe-only", 99);
    auto probe = format::probe_adapter({root_ + "/probe-only/adapter_config.json",
                                        root_ + "/probe-only/adapter_model.safetensors"});
    EXPECT_TRUE(probe.ok());
    return (probe->layout.total_bytes + 4095) / 4096 * 4096;
  }
  void start(std::uint64_t budget, CoordinatorOptions options = {}) {
    runner_ = std::make_unique<FakeRunner>(budget);
    auto resolver = NameResolver::create({root_});
    ASSERT_TRUE(resolver.ok()) << resolver.status().to_string();
    resolver_ = std::make_unique<NameResolver>(std::move(*resolver));
    coordinator_ =
        std::make_unique<Coordinator>(options, *resolver_, *runner_, runner_->arena(), clock_);
  }
  std::uint64_t stat(const std::string& key) {
    for (const auto& [k, v] : coordinator_->stats().values) {
      if (k == key) return std::get<std::uint64_t>(v);
    }
    ADD_FAILURE() << "no stat " << key;
    return 0;
  }

  std::string root_;
  FakeWaitClock clock_;
  std::unique_ptr<FakeRunner> runner_;
  std::unique_ptr<NameResolver> resolver_;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(CoordinatorTest, TheAdmissionTimeoutIsMeasuredByItsClock) {
  const std::uint64_t one = footprint();
  add("a", 1);
  add("b", 2);
  start(one, {.admission_timeout = 60s});
  auto a = coordinator_->acquire({"a"}, 1);
  ASSERT_TRUE(a.ok()) << a.status().to_string();

  Result<ipc::AcquireReply> b = Status(Errc::internal, "not run");
  const auto t0 = clock_.now();
  std::thread t([&] { b = coordinator_->acquire({"b"}, 2); });
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 60s));  // the request, on its ticket
  EXPECT_EQ(stat("admission_waiting"), 1u);
  clock_.advance(60s);
  t.join();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.code(), Errc::no_space) << b.status().to_string();
  // The refused request leaves nothing behind: its load was cancelled.
  const auto list = coordinator_->list();
  ASSERT_EQ(list.adapters.size(), 1u);
  EXPECT_EQ(list.adapters[0].name, "a");
  EXPECT_EQ(stat("admission_waiting"), 0u);
}

TEST_F(CoordinatorTest, TwoBatchesWithRoomForOneNeverHoldHalfEach) {
  const std::uint64_t one = footprint();
  for (const auto& [name, seed] :
       std::vector<std::pair<std::string, int>>{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}})
    add(name, seed);
  start(2 * one, {.admission_timeout = 60s});
  runner_->hold(Kind::fill);
  const auto t0 = clock_.now();

  std::mutex mu;
  std::condition_variable finished;
  std::vector<int> order;
  std::vector<Result<ipc::AcquireReply>> replies;
  for (int i = 0; i < 2; ++i) replies.emplace_back(Status(Errc::internal, "not run"));
  const std::vector<std::vector<std::string>> batches{{"a", "b"}, {"c", "d"}};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      auto r = coordinator_->acquire(batches[i], static_cast<ConnectionId>(i + 1));
      std::lock_guard g(mu);
      replies[i] = std::move(r);
      order.push_back(i);
      finished.notify_all();
    });
  }
  // One batch was admitted whole and fills; the other waits holding nothing.
  ASSERT_TRUE(runner_->await_started(Kind::fill, 2));
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 60s));  // the other request, on its ticket
  EXPECT_EQ(stat("admission_waiting"), 1u);
  EXPECT_EQ(stat("leases_active"), 0u);
  EXPECT_EQ(stat("bytes_reserved"), 2 * one);

  runner_->let_go(Kind::fill);
  std::unique_lock lock(mu);
  ASSERT_TRUE(finished.wait_for(lock, 10s, [&] { return order.size() == 1; }));
  const int first = order[0];
  ASSERT_TRUE(replies[first].ok()) << replies[first].status().to_string();
  EXPECT_EQ(replies[first]->grants.size(), 2u);
  EXPECT_EQ(stat("admission_waiting"), 1u) << "the other batch must still wait";
  // Its leases end: the other batch is admitted whole and loads.
  for (const auto& g : replies[first]->grants)
    coordinator_->release(g.lease, static_cast<ConnectionId>(first + 1));
  ASSERT_TRUE(finished.wait_for(lock, 10s, [&] { return order.size() == 2; }));
  lock.unlock();
  for (auto& t : threads) t.join();
  const int second = 1 - first;
  ASSERT_TRUE(replies[second].ok()) << replies[second].status().to_string();
  EXPECT_EQ(replies[second]->grants.size(), 2u);
  EXPECT_EQ(stat("loads_started"), 4u);  // no adapter was loaded twice
  EXPECT_EQ(stat("request_restarts"), 0u);
}

TEST_F(CoordinatorTest, UnloadOfALoadingAdapterStopsItsJob) {
  add("a", 1);
  start(footprint() * 2);
  runner_->hold(Kind::probe);
  Result<ipc::AcquireReply> r = Status(Errc::internal, "not run");
  std::thread t([&] { r = coordinator_->acquire({"a"}, 1); });
  ASSERT_TRUE(runner_->await_started(Kind::probe, 1));
  auto unloaded = coordinator_->unload("a");
  ASSERT_TRUE(unloaded.ok());
  EXPECT_EQ(unloaded->outcome, "cancelled");
  t.join();
  EXPECT_EQ(r.code(), Errc::cancelled) << r.status().to_string();
  EXPECT_TRUE(runner_->await_cancelled(1)) << "the job itself was not stopped";
  EXPECT_TRUE(coordinator_->list().adapters.empty());
}

// A worker that ignores its stop keeps its load from ending; a reload of the
// name runs no job beside it and gives up after load_timeout on the clock.
TEST_F(CoordinatorTest, AReloadNeverRunsBesideAStuckLoadOfTheSameName) {
  add("a", 1);
  start(footprint() * 2, {.load_timeout = 30s});
  runner_->hold(Kind::probe);
  runner_->ignore_cancellation(true);
  Result<ipc::AcquireReply> first = Status(Errc::internal, "not run");
  std::thread t1([&] { first = coordinator_->acquire({"a"}, 1); });
  ASSERT_TRUE(runner_->await_started(Kind::probe, 1));
  ASSERT_TRUE(coordinator_->unload("a").ok());
  t1.join();
  EXPECT_EQ(first.code(), Errc::cancelled);

  Result<ipc::AcquireReply> second = Status(Errc::internal, "not run");
  const auto t0 = clock_.now();
  std::thread t2([&] { second = coordinator_->acquire({"a"}, 2); });
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 30s));  // the new load, on its predecessor
  EXPECT_EQ(runner_->started(Kind::probe), 1);
  clock_.advance(30s);
  t2.join();
  EXPECT_EQ(second.code(), Errc::timeout) << second.status().to_string();
  EXPECT_EQ(runner_->started(Kind::probe), 1) << "a second probe ran beside the stuck one";
  runner_->let_go(Kind::probe);
}

}  // namespace
}  // namespace genomed::loader
