// Idle connections cost no thread: the daemon serves its clients from a
// small set of request threads (loader/request_threads.h), so 1,000 clients
// that said HELLO and went quiet leave its thread count where it was, and
// every one of them is still served when it speaks again.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdio>
#include <vector>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

constexpr int kClients = 1000;
// A thread per connection would need more than kClients threads; the
// request threads are as many as cores plus the few the daemon always has
// (main, one per worker slot).
constexpr int kThreadBound = 64;

// Each client holds a socket here: the soft limit (often 1024) is too low.
void raise_descriptor_limit() {
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  ASSERT_GE(lim.rlim_max, static_cast<rlim_t>(kClients + 256))
      << "the hard descriptor limit is too low for this test";
  lim.rlim_cur = lim.rlim_max;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lim), 0);
}

TEST(IdleConnections, AThousandIdleClientsCostNoThreadAndAreAllStillServed) {
  raise_descriptor_limit();
  // All of one uid, this test's: past its default share (three quarters of
  // --max-connections, 768) they would be refused, which the per-uid tests
  // cover. Here the point is what 1,000 connections cost.
  Daemon daemon({.extra_args = {"--max-connections-per-uid", "0"}});
  const int before = thread_count(daemon.pid());
  ASSERT_GT(before, 0);

  std::vector<Client> clients;
  clients.reserve(kClients);
  for (int i = 0; i < kClients; ++i) clients.push_back(daemon.connect());  // HELLO done
  const int idle = thread_count(daemon.pid());
  std::printf("genomed threads: %d with no client, %d with %d idle clients\n", before, idle,
              kClients);
  RecordProperty("threads_without_clients", before);
  RecordProperty("threads_with_idle_clients", idle);
  EXPECT_GT(idle, 0);
  EXPECT_LT(idle, kThreadBound) << daemon.log().substr(0, 4000);

  // Every connection is still open and served.
  int healthy = 0;
  for (Client& c : clients) {
    auto h = c.health();
    if (h.ok()) ++healthy;
  }
  EXPECT_EQ(healthy, kClients);
  EXPECT_LT(thread_count(daemon.pid()), kThreadBound);
  EXPECT_EQ(daemon.log().find("a new client was refused"), std::string::npos);
}

}  // namespace
}  // namespace genomed::testing
