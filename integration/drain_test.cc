// The graceful drain with the real daemon (--drain-timeout, loader/drain.h):
// SIGTERM while a client holds a lease stops new clients, refuses new loads
// and leases with shutting_down, reports HEALTH draining, keeps serving the
// lease, and exits 0 once it is released -- or once the timeout passes, or
// at a second signal.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <string>

#include "integration/daemon_fixture.h"

namespace genomed::testing {
namespace {

bool exited_zero(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

// SIGTERM, then waits until the daemon reports the drain on HEALTH.
void begin_drain(Daemon& d, Client& c) {
  d.signal(SIGTERM);
  ASSERT_TRUE(eventually([&] {
    auto h = c.health();
    return h.ok() && !h->healthy && h->reason.find("draining") != std::string::npos;
  })) << d.log();
}

TEST(Drain, ALeaseHeldAtSigtermIsServedUntilReleasedThenTheDaemonExitsZero) {
  // Far beyond the test's own bounds: only the release can end this drain.
  Daemon d({.extra_args = {"--drain-timeout", "10m"}});
  d.add_adapter("a", megabyte_adapter(1));
  d.add_adapter("b", megabyte_adapter(2));
  Client c = d.connect();
  auto lease = c.acquire("a");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  begin_drain(d, c);

  // No new clients: the socket is gone.
  EXPECT_FALSE(Client::connect(d.socket_path()).ok());
  // No new leases or loads on the connections it has.
  auto again = c.acquire("a");
  EXPECT_EQ(again.code(), Errc::shutting_down) << again.status().to_string();
  EXPECT_EQ(c.load("b").code(), Errc::shutting_down);
  // PIN starts a load as LOAD does: refused too, and nothing is loaded.
  auto pinned = c.pin("b");
  EXPECT_EQ(pinned.code(), Errc::shutting_down) << pinned.status().to_string();
  auto listed = c.list();
  ASSERT_TRUE(listed.ok()) << listed.status().to_string();
  for (const auto& adapter : *listed) {
    EXPECT_NE(adapter.name, "b") << "a PIN started a load during the drain";
  }
  // The lease it holds is still good, and the connection still answers.
  EXPECT_TRUE(lease->verify().ok());
  auto stats = c.stats();
  ASSERT_TRUE(stats.ok());
  bool found = false;
  for (const auto& [key, value] : *stats) {
    if (key != "leases_active") continue;
    found = true;
    EXPECT_EQ(std::get<std::uint64_t>(value), 1u);
  }
  EXPECT_TRUE(found) << "STATS has no leases_active";

  lease->release();
  const int status = d.wait();
  EXPECT_TRUE(exited_zero(status)) << status << d.log();
  EXPECT_NE(d.log().find("drained in"), std::string::npos) << d.log();
  EXPECT_NE(d.log().find("stopped cleanly"), std::string::npos) << d.log();
}

TEST(Drain, ALeaseNeverReleasedEndsTheDrainAtTheTimeout) {
  Daemon d({.extra_args = {"--drain-timeout", "300ms"}});
  d.add_adapter("a", megabyte_adapter(1));
  Client c = d.connect();
  auto lease = c.acquire("a");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  d.signal(SIGTERM);
  const int status = d.wait();  // the lease is still held
  EXPECT_TRUE(exited_zero(status)) << status << d.log();
  EXPECT_NE(d.log().find("--drain-timeout passed"), std::string::npos) << d.log();
  EXPECT_NE(d.log().find("1 lease(s) still held are dropped"), std::string::npos) << d.log();
}

TEST(Drain, ASecondSignalStopsAtOnce) {
  Daemon d({.extra_args = {"--drain-timeout", "10m"}});
  d.add_adapter("a", megabyte_adapter(1));
  Client c = d.connect();
  auto lease = c.acquire("a");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  begin_drain(d, c);
  d.signal(SIGINT);
  const int status = d.wait();
  EXPECT_TRUE(exited_zero(status)) << status << d.log();
  EXPECT_NE(d.log().find("a second stop signal arrived"), std::string::npos) << d.log();
}

TEST(Drain, WithoutLeasesSigtermStopsWithoutWaiting) {
  Daemon d({.extra_args = {"--drain-timeout", "10m"}});
  Client c = d.connect();  // connected, holding nothing
  EXPECT_TRUE(exited_zero(d.stop())) << d.log();
  EXPECT_EQ(d.log().find("draining:"), std::string::npos) << d.log();
}

}  // namespace
}  // namespace genomed::testing
