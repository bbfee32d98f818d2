// A client that hangs up while one of its requests waits (for a load, or
// for room in the budget) loses every lease it holds at once, not when the
// request ends; a load that only such clients were waiting for is cancelled
// (its worker stopped); one somebody else still waits for goes on.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

namespace fs = std::filesystem;

// Where a once-fault writes its marker; removed when the test ends (after
// the daemon, which is declared later and so destroyed first).
ScratchDir marker_dir() { return ScratchDir("genomed-marker"); }

struct JoinOnExit {
  std::thread& thread;
  ~JoinOnExit() {
    if (thread.joinable()) thread.join();
  }
};

// A client process that acquires `held`, says so on a pipe, then acquires
// `hung` (which blocks) and never returns. Forked before the test starts
// any thread. SIGKILLed by the test (and by the destructor, on failure).
class DoomedClient {
 public:
  DoomedClient(const std::string& socket, const std::string& held, const std::string& hung) {
    int p[2];
    if (::pipe(p) != 0) std::abort();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(p[0]);
      auto client = Client::connect(socket, "doomed");
      if (!client) ::_exit(2);
      auto lease = client->acquire(held);
      if (!lease) ::_exit(3);
      if (::write(p[1], "a", 1) != 1) ::_exit(4);
      (void)client->acquire(hung);  // waits until killed
      ::_exit(5);
    }
    ::close(p[1]);
    char c = 0;
    acquired_ = ::read(p[0], &c, 1) == 1;  // EOF if the child failed first
    ::close(p[0]);
  }
  ~DoomedClient() { kill(); }
  bool acquired() const { return acquired_; }
  // SIGKILLs it and reaps it; true if it was still waiting (not exited).
  bool kill() {
    if (pid_ <= 0) return false;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }

 private:
  pid_t pid_ = -1;
  bool acquired_ = false;
};

TEST(Hangup, KilledWaitingClientLosesItsLeasesAtOnceAndItsOrphanLoadIsCancelled) {
  const ScratchDir dir = marker_dir();
  const std::string marker = dir / "fired";
  // The probe of `hung` hangs for its whole 60 s deadline unless stopped.
  Daemon daemon({.workers = 2,
                 .load_timeout_ms = 60000,
                 .extra_args = {"--worker-fault", "hang@probe:hung,once=" + marker}});
  daemon.add_adapter("held", {});
  daemon.add_adapter("hung", {});
  DoomedClient doomed(daemon.socket_path(), "held", "hung");
  ASSERT_TRUE(doomed.acquired()) << daemon.log();
  pid_t worker = -1;
  ASSERT_TRUE(eventually([&] { return (worker = pid_in(marker)) > 0; }));
  const ProcessRef hung_worker = ref_of(worker);
  // Its acquire of `hung` waits on the load (misses: held, hung).
  ASSERT_TRUE(eventually([&] { return daemon.stat("misses") == 2u; }));
  ASSERT_EQ(daemon.stat("leases_active"), 1u);

  ASSERT_TRUE(doomed.kill()) << "the client's acquire of 'hung' returned:\n" << daemon.log();
  // Its lease of `held` ends at once (the load is 60 s from its deadline).
  EXPECT_TRUE(eventually([&] { return daemon.stat("leases_active") == 0u; }, 10000))
      << daemon.log();
  // Nobody else waits for `hung`: its load is cancelled, its worker stopped
  // and reaped, its range given back.
  EXPECT_TRUE(eventually([&] { return daemon.stat("loads_cancelled") == 1u; }, 20000))
      << daemon.log();
  EXPECT_TRUE(eventually([&] { return !alive(hung_worker); }, 20000)) << "the hung worker lives";
  EXPECT_TRUE(eventually([&] { return daemon.stat("bytes_reserved") == 0u; }));
  EXPECT_EQ(daemon.stat("loads_failed"), 0u);
  EXPECT_EQ(daemon.stat("quarantined"), 0u);
  Client control = daemon.connect();
  auto list = control.list();
  ASSERT_TRUE(list.ok());
  for (const auto& a : *list) EXPECT_NE(a.name, "hung") << a.state;
  const std::string log = daemon.log();
  EXPECT_NE(log.find("every client waiting for it disconnected"), std::string::npos) << log;
  // `held` is still resident, unleased, and can be acquired again.
  auto again = control.acquire("held");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(daemon.stat("loads_completed"), 1u);  // `held` was not loaded again
}

TEST(Hangup, KilledWaitingClientLosesItsLeasesButALoadSomebodyElseWaitsForGoesOn) {
  const ScratchDir dir = marker_dir();
  const std::string marker = dir / "fired";
  Daemon daemon({.workers = 2,
                 .load_timeout_ms = 60000,
                 .extra_args = {"--worker-fault", "hang@probe:hung,once=" + marker,
                                "--restart-backoff-ms", "1"}});
  daemon.add_adapter("held", {});
  daemon.add_adapter("hung", {});
  DoomedClient doomed(daemon.socket_path(), "held", "hung");
  ASSERT_TRUE(doomed.acquired()) << daemon.log();
  pid_t worker = -1;
  ASSERT_TRUE(eventually([&] { return (worker = pid_in(marker)) > 0; }));
  ASSERT_TRUE(eventually([&] { return daemon.stat("misses") == 2u; }));

  // A second client waits for `hung` too.
  Client other = daemon.connect();
  Result<Lease> second = Status(Errc::internal, "not run");
  std::atomic<bool> second_done{false};
  std::thread t([&] {
    second = other.acquire("hung");
    second_done = true;
  });
  JoinOnExit join_t{t};
  ASSERT_TRUE(eventually([&] { return daemon.stat("misses") == 3u; }));

  ASSERT_TRUE(doomed.kill()) << "the client's acquire of 'hung' returned:\n" << daemon.log();
  EXPECT_TRUE(eventually([&] { return daemon.stat("leases_active") == 0u; }, 10000))
      << daemon.log();
  // The daemon has dealt with the hang-up (its log says so) ...
  EXPECT_TRUE(eventually([&] {
    return daemon.log().find("0 load(s) nobody else waited for") != std::string::npos;
  })) << daemon.log();
  // ... and the load goes on for the other client.
  EXPECT_EQ(daemon.stat("loads_cancelled"), 0u);
  EXPECT_FALSE(second_done.load());
  EXPECT_TRUE(alive(ref_of(worker)));
  {
    Client control = daemon.connect();
    auto list = control.list();
    ASSERT_TRUE(list.ok());
    bool loading = false;
    for (const auto& a : *list) loading |= a.name == "hung" && a.state == "loading";
    EXPECT_TRUE(loading);
  }
  // An outside kill of the hung worker is retried (the once= fault does not
  // fire again): the other client gets its lease.
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  t.join();
  ASSERT_TRUE(second.ok()) << second.status().to_string() << "\n" << daemon.log();
  EXPECT_EQ(daemon.stat("leases_active"), 1u);
  EXPECT_EQ(daemon.stat("loads_cancelled"), 0u);
  EXPECT_EQ(daemon.stat("loads_completed"), 2u);
  second->release();
  EXPECT_TRUE(eventually([&] { return daemon.stat("leases_active") == 0u; }));
}

}  // namespace
}  // namespace genomed::testing
