// A RELEASE never waits behind another request of the same connection: the
// daemon keeps reading a connection while one of its requests waits, and
// applies a RELEASE as soon as it arrives. The tracker's case: two threads
// share one Client; A's cold acquire needs exactly the memory B's lease
// holds. B's release must get through while A waits, or A waits out the
// admission timeout and fails with no_space.
#include <gtest/gtest.h>

#include <future>
#include <memory>

#include "integration/daemon_fixture.h"
#include "integration/raw_socket.h"
#include "ipc/protocol.h"

namespace genomed::testing {
namespace {

// A budget with room for two of the adapters PREFIX0..2. The admission
// timeout is far longer than a test's own: a request waiting for room can
// only be served through a release.
std::unique_ptr<Daemon> room_for_two(const std::string& prefix) {
  auto daemon = std::make_unique<Daemon>(
      DaemonOptions{.budget_bytes = 3ull << 20, .admission_timeout_ms = 600000});
  for (int i = 0; i < 3; ++i) daemon->add_adapter(prefix + std::to_string(i), megabyte_adapter(i));
  return daemon;
}

TEST(ReleaseWhileWaiting, AReleaseOnTheSameClientMakesRoomForItsOwnWaitingAcquire) {
  auto owned = room_for_two("m");  // A can only succeed through B's release
  Daemon& daemon = *owned;
  Client shared = daemon.connect();
  auto held0 = shared.acquire("m0");
  auto held1 = shared.acquire("m1");
  ASSERT_TRUE(held0.ok() && held1.ok());

  // Thread A: a cold acquire that needs the room m0 or m1 takes.
  auto a = std::async(std::launch::async, [&] { return shared.acquire("m2"); });
  // It really waits for room (not yet answered).
  ASSERT_TRUE(eventually([&] { return daemon.stat("admission_waiting") == 1; }, 60000))
      << daemon.log();
  EXPECT_EQ(daemon.stat("evictions"), 0u);

  // Thread B releases on the same Client while A's request is pending.
  std::async(std::launch::async, [&] { held0->release(); }).get();

  auto lease = a.get();
  ASSERT_TRUE(lease.ok()) << lease.status().to_string() << "\n" << daemon.log();
  EXPECT_EQ(lease->name(), "m2");
  EXPECT_EQ(daemon.stat("evictions"), 1u) << "m0's memory went to m2";
  EXPECT_EQ(daemon.stat("leases_active"), 2u);  // m1 and m2
}

TEST(ReleaseWhileWaiting, RequestsPipelinedBehindAWaitingOneAreAnsweredInOrder) {
  auto owned = room_for_two("q");
  Daemon& daemon = *owned;
  RawSocket raw(daemon.socket_path());
  raw.hello();
  ASSERT_NE(raw.acquire("q0"), 0u);
  const std::uint64_t lease1 = raw.acquire("q1");
  ASSERT_NE(lease1, 0u);

  ipc::Request acquire;
  acquire.op = ipc::Op::acquire;
  acquire.names = {"q2"};
  raw.send(acquire);
  ASSERT_TRUE(eventually([&] { return daemon.stat("admission_waiting") == 1; }, 60000));
  // Pipelined behind the waiting ACQUIRE: a STATS (queued), then the RELEASE
  // that makes room (applied at once, ahead of both).
  ipc::Request stats;
  stats.op = ipc::Op::stats;
  raw.send(stats);
  ipc::Request release;
  release.op = ipc::Op::release;
  release.leases = {lease1};
  raw.send(release);

  auto first = raw.reply();
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  auto grants = ipc::decode_acquire_reply(first->body);
  ASSERT_TRUE(grants.ok()) << "the ACQUIRE is answered first: " << grants.status().to_string();
  EXPECT_EQ(grants->grants.at(0).name, "q2");
  auto second = raw.reply();
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  auto values = ipc::decode_stats_reply(second->body);
  ASSERT_TRUE(values.ok()) << values.status().to_string();
  std::uint64_t leases = 0;
  for (const auto& [key, value] : values->values) {
    if (key == "leases_active") leases = std::get<std::uint64_t>(value);
  }
  EXPECT_EQ(leases, 2u) << "q0 and q2; q1 was released";
}

}  // namespace
}  // namespace genomed::testing
