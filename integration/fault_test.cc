// Workers that crash, hang or are killed from outside never take genomed
// down: retries, deadlines, quarantine, the circuit breaker and restart
// intensity, driven by the workers' test-only fault injection and by real
// signals sent from outside.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "integration/daemon_fixture.h"
#include "integration/file_tensors.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

std::string stat_text(const Daemon& d, const std::string& key) {
  auto stats = d.connect().stats();
  for (const auto& [k, v] : *stats) {
    if (k == key)
      return std::holds_alternative<std::string>(v) ? std::get<std::string>(v)
                                                    : std::to_string(std::get<std::uint64_t>(v));
  }
  return "";
}

TEST(WorkerFaults, KillNineMidFillCompletesOnAnotherWorkerWithTheFileBytes) {
  const ScratchDir marker_dir("genomed-marker");  // outlives the daemon declared below
  const std::string marker = marker_dir / "fired";
  Daemon daemon({.extra_args = {"--worker-fault", "hang@fill:victim,once=" + marker}});
  const std::string dir = daemon.add_adapter("victim", {.rank = 32, .layers = 4, .hidden = 512});
  Client client = daemon.connect();
  Result<Lease> lease = Status(Errc::internal, "not run");
  std::thread t([&] { lease = client.acquire("victim"); });
  pid_t victim = -1;
  ASSERT_TRUE(eventually([&] { return (victim = pid_in(marker)) > 0; }));
  ASSERT_EQ(::kill(victim, SIGKILL), 0);  // it hangs with half of its range written
  t.join();
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  expect_file_bytes(*lease, dir + "/adapter_model.safetensors");
  EXPECT_TRUE(eventually([&] { return daemon.stat("worker_crashes") == 1u; }));
  EXPECT_EQ(daemon.stat("load_retries"), 1u);
  EXPECT_TRUE(eventually([&] { return daemon.stat("workers_alive") == 2; }));
  EXPECT_NE(daemon.log().find("signal SIGKILL"), std::string::npos);
}

TEST(WorkerFaults, KillNineOfOnePartOfASplitFillRetriesThatPartOnly) {
  const ScratchDir marker_dir("genomed-marker");  // outlives the daemon declared below
  const std::string marker = marker_dir / "fired";
  Daemon daemon({.budget_bytes = 256ull << 20,
                 .extra_args = {"--worker-fault", "hang@fill:large,once=" + marker}});
  const std::string dir =
      daemon.add_adapter("large", {.rank = 64, .layers = 32, .hidden = 2048});  // 64 MiB
  Client client = daemon.connect();
  Result<Lease> lease = Status(Errc::internal, "not run");
  std::thread t([&] { lease = client.acquire("large"); });
  pid_t victim = -1;
  ASSERT_TRUE(eventually([&] { return (victim = pid_in(marker)) > 0; }));
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  t.join();
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  expect_file_bytes(*lease, dir + "/adapter_model.safetensors");
  EXPECT_EQ(daemon.stat("load_retries"), 1u);
}

TEST(WorkerFaults, SigstopMidLoadGetsTimeoutAtTheDeadlineAndTheNextRequestWorks) {
  const ScratchDir marker_dir("genomed-marker");  // outlives the daemon declared below
  const std::string marker = marker_dir / "fired";
  constexpr int kDeadlineMs = 1000;
  Daemon daemon({.load_timeout_ms = kDeadlineMs,
                 .extra_args = {"--worker-fault", "hang@fill:frozen,once=" + marker,
                                "--load-timeout-per-gib-ms", "0", "--kill-grace-ms", "100"}});
  const std::string dir = daemon.add_adapter("frozen", {});
  Client client = daemon.connect();
  const auto start = SteadyClock::now();
  Result<Lease> lease = Status(Errc::internal, "not run");
  std::thread t([&] { lease = client.acquire("frozen"); });
  pid_t frozen = -1;
  ASSERT_TRUE(eventually([&] { return (frozen = pid_in(marker)) > 0; }));
  ASSERT_EQ(::kill(frozen, SIGSTOP), 0);
  t.join();
  const auto elapsed = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start).count();
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.code(), Errc::timeout) << lease.status().to_string();
  // At the deadline, within tolerance: not before it, and not hanging on.
  EXPECT_GE(elapsed, kDeadlineMs * 9 / 10);
  EXPECT_LT(elapsed, kDeadlineMs + 5000);
  EXPECT_TRUE(eventually([&] { return daemon.stat("worker_timeouts") == 1; }));
  auto next = client.acquire("frozen");
  ASSERT_TRUE(next.ok()) << next.status().to_string();
  expect_file_bytes(*next, dir + "/adapter_model.safetensors");
  EXPECT_EQ(daemon.stat("bytes_reserved"), 0u);
}

TEST(WorkerFaults, FifoAsWeightsFileIsRefusedAtOnceInsteadOfHanging) {
  Daemon daemon({.load_timeout_ms = 60000});
  const std::string dir = daemon.add_adapter("pipe", {});
  const std::string weights = dir + "/adapter_model.safetensors";
  fs::remove(weights);
  ASSERT_EQ(::mkfifo(weights.c_str(), 0644), 0);
  Client client = daemon.connect();
  auto r = client.acquire("pipe");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::file_unreadable) << r.status().to_string();
  EXPECT_EQ(daemon.stat("worker_timeouts"), 0u);
}

TEST(WorkerFaults, CrashingAdapterIsQuarantinedOthersLoadAndItLifts) {
  Daemon daemon({.extra_args = {"--worker-fault", "crash@probe:poison", "--quarantine-ms", "400",
                                "--restart-backoff-ms", "1", "--breaker-failures", "1000"}});
  const std::string poison = daemon.add_adapter("poison", {});
  daemon.add_adapter("fine", {});
  Client client = daemon.connect();
  // Two crashed workers (the first attempt and its retry) quarantine it.
  auto first = client.acquire("poison");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.code(), Errc::worker_crashed) << first.status().to_string();
  EXPECT_NE(first.status().message().find("quarantined"), std::string::npos);
  // Counted as each worker is retired, just after its job's reply.
  EXPECT_TRUE(eventually([&] { return daemon.stat("worker_crashes") == 2u; }));
  auto refused = client.acquire("poison");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), Errc::quarantined);
  EXPECT_NE(refused.status().message().find("s more"), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(daemon.stat("worker_crashes"), 2u) << "a quarantined adapter must not reach a worker";
  EXPECT_EQ(daemon.stat("quarantined"), 1u);
  // Other adapters are unaffected.
  EXPECT_TRUE(client.acquire("fine").ok());
  // A changed weights file lifts it (it then crashes and is quarantined again).
  fs::last_write_time(
      poison + "/adapter_model.safetensors",
      fs::last_write_time(poison + "/adapter_model.safetensors") + std::chrono::seconds(5));
  EXPECT_EQ(client.acquire("poison").code(), Errc::worker_crashed);
  EXPECT_EQ(client.acquire("poison").code(), Errc::quarantined);
  // Unload lifts it too.
  auto lifted = client.unload("poison");
  ASSERT_TRUE(lifted.ok());
  EXPECT_EQ(lifted->outcome, "unquarantined");
  EXPECT_EQ(client.acquire("poison").code(), Errc::worker_crashed);
  // And it expires by itself.
  EXPECT_EQ(client.acquire("poison").code(), Errc::quarantined);
  EXPECT_TRUE(eventually([&] { return client.acquire("poison").code() == Errc::worker_crashed; }));
}

TEST(WorkerFaults, BreakerOpensFailsFastServesCachedHalfOpensClosesAndReopensLonger) {
  Daemon daemon({.extra_args = {"--worker-fault", "crash@probe:bad", "--breaker-failures", "2",
                                "--breaker-window-ms", "60000", "--breaker-cooldown-ms", "300",
                                "--breaker-cooldown-multiplier", "2", "--quarantine-strikes",
                                "1000", "--job-retries", "0", "--restart-backoff-ms", "1"}});
  daemon.add_adapter("bad", {});
  daemon.add_adapter("good", {});
  daemon.add_adapter("cached", {.seed = 5});
  Client client = daemon.connect();
  ASSERT_TRUE(client.load("cached").ok());
  EXPECT_EQ(stat_text(daemon, "breaker_state"), "closed");
  EXPECT_EQ(client.acquire("bad").code(), Errc::worker_crashed);
  EXPECT_EQ(stat_text(daemon, "breaker_state"), "closed");
  EXPECT_EQ(client.acquire("bad").code(), Errc::worker_crashed);
  EXPECT_EQ(stat_text(daemon, "breaker_state"), "open");
  // OPEN: loads fail fast with a retry-after; cached adapters are served.
  auto refused = client.acquire("good");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), Errc::circuit_open);
  EXPECT_NE(refused.status().message().find("ms more"), std::string::npos)
      << refused.status().message();
  EXPECT_TRUE(client.acquire("cached").ok());
  auto health = client.health();
  ASSERT_TRUE(health.ok());
  EXPECT_FALSE(health->healthy);
  // After the cool-down, HALF_OPEN; a successful probe load closes it.
  ASSERT_TRUE(eventually([&] { return stat_text(daemon, "breaker_state") == "half_open"; }));
  ASSERT_TRUE(client.acquire("good").ok());
  EXPECT_EQ(stat_text(daemon, "breaker_state"), "closed");
  // Open again; this time the half-open probe fails: open with a longer cool-down.
  EXPECT_EQ(client.acquire("bad").code(), Errc::worker_crashed);
  EXPECT_EQ(client.acquire("bad").code(), Errc::worker_crashed);
  EXPECT_EQ(stat_text(daemon, "breaker_state"), "open");
  ASSERT_TRUE(eventually([&] { return stat_text(daemon, "breaker_state") == "half_open"; }));
  EXPECT_EQ(client.acquire("bad").code(), Errc::worker_crashed);
  EXPECT_EQ(stat_text(daemon, "breaker_state"), "open");
  EXPECT_NE(daemon.log().find("cool-down now 600 ms"), std::string::npos);
  EXPECT_EQ(daemon.stat("breaker_transitions"), 6u);
}

TEST(WorkerFaults, RestartIntensityExceededIsUnhealthyFailsFastThenRecovers) {
  Daemon daemon(
      {.extra_args = {"--worker-fault", "crash@probe:bad", "--restart-intensity", "2",
                      "--restart-period-ms", "800", "--restart-backoff-ms", "1", "--job-retries",
                      "0", "--quarantine-strikes", "1000", "--breaker-failures", "1000"}});
  daemon.add_adapter("bad", {});
  daemon.add_adapter("good", {});
  daemon.add_adapter("cached", {.seed = 3});
  Client client = daemon.connect();
  ASSERT_TRUE(client.load("cached").ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(client.acquire("bad").code(), Errc::worker_crashed);
  // The third death is counted as its worker is retired, just after the reply.
  ASSERT_TRUE(eventually([&] { return daemon.stat("pool_healthy") == 0u; }, 2000));
  auto health = client.health();
  ASSERT_TRUE(health.ok());
  EXPECT_FALSE(health->healthy);
  EXPECT_NE(health->reason.find("restarted too often"), std::string::npos);
  auto refused = client.acquire("good");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), Errc::unhealthy);
  EXPECT_TRUE(client.acquire("cached").ok());  // cached adapters keep being served
  ASSERT_TRUE(eventually([&] { return daemon.stat("pool_healthy") == 1; }));
  auto recovered = client.acquire("good");
  EXPECT_TRUE(recovered.ok()) << recovered.status().to_string();
  EXPECT_TRUE(eventually([&] { return daemon.stat("workers_alive") == 2; }));
}

TEST(WorkerFaults, StopDuringTheUnhealthyPauseIsPrompt) {
  // Slots waiting to respawn must still see stop(): the 60 s pause must not
  // delay shutdown.
  Daemon daemon(
      {.extra_args = {"--worker-fault", "crash@probe:bad", "--restart-intensity", "1",
                      "--restart-period-ms", "60000", "--restart-backoff-ms", "1", "--job-retries",
                      "0", "--quarantine-strikes", "1000", "--breaker-failures", "1000"}});
  daemon.add_adapter("bad", {});
  Client client = daemon.connect();
  for (int i = 0; i < 2; ++i) EXPECT_EQ(client.acquire("bad").code(), Errc::worker_crashed);
  ASSERT_TRUE(eventually([&] { return daemon.stat("pool_healthy") == 0; }));
  const auto start = SteadyClock::now();
  const int status = daemon.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(20));
}

TEST(WorkerFaults, GarbageReplyIsAProtocolErrorAndTheWorkerIsReplaced) {
  Daemon daemon({.extra_args = {"--worker-fault", "garbage@probe:liar", "--job-retries", "0",
                                "--quarantine-strikes", "1000"}});
  daemon.add_adapter("liar", {});
  daemon.add_adapter("honest", {});
  Client client = daemon.connect();
  EXPECT_EQ(client.acquire("liar").code(), Errc::worker_protocol);
  EXPECT_TRUE(client.acquire("honest").ok());
  // Counted when the worker is retired, just after the reply went out.
  EXPECT_TRUE(eventually([&] { return daemon.stat("worker_crashes") == 1u; }));
  EXPECT_NE(daemon.log().find("broke the job protocol"), std::string::npos);
}

// The soak: workers are SIGKILLed over and over while 8 clients run 2,000
// mixed requests. Every request ends in success or a typed error; afterwards
// nothing leaked.
TEST(WorkerFaults, RepeatedKillsUnderLoadLeakNothing) {
  // The backoff is capped low: a slow build (ASan) can see every worker
  // killed before it finishes a job, and a backoff doubling to its 5 s
  // default cap would stretch 300 kills over many minutes.
  Daemon daemon({.budget_bytes = 4ull << 20,
                 .extra_args = {"--restart-backoff-ms", "1", "--restart-backoff-max-ms", "20",
                                "--restart-intensity", "100000", "--quarantine-strikes", "100000",
                                "--breaker-failures", "100000"}});
  constexpr int kAdapters = 12;
  for (int i = 0; i < kAdapters; ++i) {
    daemon.add_adapter(
        "s" + std::to_string(i),
        {.rank = 16, .layers = 4, .hidden = 1024, .seed = static_cast<std::uint64_t>(50 + i)});
  }
  std::map<std::string, std::string> first_tensor;  // expected bytes of each adapter's first tensor
  for (int i = 0; i < kAdapters; ++i) {
    const std::string name = "s" + std::to_string(i);
    first_tensor[name] =
        read_file_tensors(daemon.root() + "/" + name + "/adapter_model.safetensors")
            .begin()
            ->second.bytes;
  }
  const pid_t genomed = daemon.pid();
  // The only connection open at both descriptor counts: every other one
  // (the clients, Daemon::stat) has ended by then.
  Client observer = daemon.connect();
  ASSERT_TRUE(observer.acquire("s0").ok());
  const std::size_t fds_before = open_fds(genomed);
  // genomed is not dumpable: only root (CAP_SYS_PTRACE) reads its
  // /proc/PID/fd. Without it the comparison below would hold vacuously.
  ASSERT_GT(fds_before, 0u) << "cannot count genomed's descriptors: run as root";

  const std::set<Errc> allowed = {Errc::worker_crashed, Errc::timeout,    Errc::cancelled,
                                  Errc::draining,       Errc::not_loaded, Errc::no_space,
                                  Errc::overloaded,     Errc::unhealthy,  Errc::worker_protocol,
                                  Errc::circuit_open,   Errc::quarantined};
  std::atomic<bool> done{false};
  std::atomic<int> kills{0};
  std::thread killer([&] {
    std::mt19937 rng(1234);
    while (!done && kills < 300) {
      const auto kids = children_of(genomed);
      if (!kids.empty()) {
        if (::kill(kids[rng() % kids.size()], SIGKILL) == 0) ++kills;
      }
      std::this_thread::sleep_for(
          milliseconds(rng() % 15));  // pacing of the chaos, not synchronisation
    }
  });
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::string> unexpected;
  std::mutex unexpected_mu;
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      Client client = daemon.connect();
      std::mt19937 rng(static_cast<unsigned>(c));
      for (int i = 0; i < 250; ++i) {
        const std::string name = "s" + std::to_string(rng() % kAdapters);
        const int op = static_cast<int>(rng() % 10);
        Status s;
        if (op < 7) {
          auto lease = client.acquire(name);
          if (lease.ok()) {
            if (bytes_of(lease->tensors()[0].data) != first_tensor[name]) {
              std::lock_guard lock(unexpected_mu);
              unexpected.push_back("wrong bytes in " + name);
            }
          }
          s = lease.status();
        } else if (op < 9) {
          s = client.load(name).status();
        } else {
          s = client.unload(name).status();
        }
        if (s.ok()) {
          ++ok;
        } else {
          ++failed;
          if (allowed.count(s.code()) == 0) {
            std::lock_guard lock(unexpected_mu);
            unexpected.push_back(s.to_string());
          }
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  done = true;
  killer.join();
  std::printf("soak: %d ok, %d typed errors, %d workers killed\n", ok.load(), failed.load(),
              kills.load());
  EXPECT_EQ(ok + failed, 2000);
  EXPECT_GT(ok, 0);
  EXPECT_GT(kills, 0);
  EXPECT_TRUE(unexpected.empty()) << unexpected.size()
                                  << " unexpected results, first: " << unexpected.front();

  // Afterwards: workers replaced, no zombie, no leaked descriptor, arena
  // accounting equal to the resident set.
  // The last kill may not be noticed yet when the killer stops: wait until
  // the daemon counts two workers and two children exist (the dead one
  // reaped, its replacement forked).
  ASSERT_TRUE(eventually(
      [&] { return daemon.stat("workers_alive") == 2 && children_of(genomed).size() == 2; },
      20000));
  ASSERT_TRUE(eventually([&] { return daemon.stat("leases_active") == 0; }));
  for (pid_t kid : children_of(genomed))
    EXPECT_NE(process_state(kid), 'Z') << "zombie worker " << kid;
  EXPECT_EQ(children_of(genomed).size(), 2u);
  // A leak shows as more. `before` may count one descriptor more than the
  // steady state: the eventfd of s0's load, whose thread may not have
  // returned yet when it was counted.
  EXPECT_TRUE(eventually([&] { return open_fds(genomed) <= fds_before; }))
      << "descriptors before " << fds_before << ", after " << open_fds(genomed);
  Client client = daemon.connect();
  auto list = client.list();
  ASSERT_TRUE(list.ok());
  std::uint64_t footprint = 0;
  for (const auto& a : *list) {
    EXPECT_EQ(a.state, "ready");
    footprint += (a.bytes + 4095) / 4096 * 4096;  // ranges are page-aligned
  }
  EXPECT_EQ(daemon.stat("bytes_resident"), footprint);
  EXPECT_EQ(daemon.stat("bytes_reserved"), 0u);
  // And it still serves.
  auto lease = client.acquire("s1");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  EXPECT_EQ(bytes_of(lease->tensors()[0].data), first_tensor["s1"]);
}

}  // namespace
}  // namespace genomed::testing
