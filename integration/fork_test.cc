// A client across fork() (include/genomed/client.h, "fork()"): a pre-fork
// server's child inherits its parent's Client and Leases, which share the
// parent's socket and lease-slot page. Whatever the child does with them --
// release, destroy, use -- the parent's leases stay held (no RELEASE on the
// shared socket, no give-back in the shared page), its connection keeps
// serving, and the child's calls fail with not_connected.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

TEST(Fork, AChildLettingGoOfInheritedLeasesLeavesTheParentsHeld) {
  Daemon d({.budget_bytes = 3ull << 20, .admission_timeout_ms = 300});
  for (int i = 0; i < 3; ++i) d.add_adapter("f" + std::to_string(i), megabyte_adapter(100 + i));
  Client slots = d.connect();
  Client plain = d.connect_without_slots();
  auto s1 = slots.acquire("f0");  // over the socket: grants the slot (count 1)
  auto s2 = slots.acquire("f0");  // through the slot (count 2)
  auto p1 = plain.acquire("f1");  // an ordinary lease
  ASSERT_TRUE(s1.ok() && s2.ok() && p1.ok());
  ASSERT_EQ(d.stat("slot_hits"), 1u) << "the second lease was not taken through the slot";
  const std::string f0 = bytes_of(s1->bytes());
  ASSERT_EQ(d.stat("leases_active"), 3u);

  // Each way a child lets go: release(), the Leases' destructors, and the
  // Clients' destructors after them.
  for (int how = 0; how < 3; ++how) {
    const int code = in_child([&] {
      if (how == 0) {
        s1->release();
        s2->release();
        p1->release();
      } else {
        std::vector<Lease> dropped;
        dropped.push_back(std::move(*s1));
        dropped.push_back(std::move(*s2));
        dropped.push_back(std::move(*p1));
        dropped.clear();
        if (how == 2) {
          Client a = std::move(slots);
          Client b = std::move(plain);
        }
      }
      return 0;
    });
    ASSERT_EQ(code, 0) << how;
    EXPECT_EQ(d.stat("leases_active"), 3u) << "after child " << how;
    EXPECT_EQ(listed_leases(slots, "f0"), 2u) << "after child " << how;
    EXPECT_EQ(listed_leases(plain, "f1"), 1u) << "after child " << how;
  }

  // Memory pressure that would evict an unleased adapter: f2 needs the room
  // of one, and both the parent holds are leased, so none is given up.
  Client other = d.connect();
  EXPECT_EQ(other.acquire("f2").code(), Errc::no_space) << d.log();
  EXPECT_EQ(bytes_of(s1->bytes()), f0);
  EXPECT_TRUE(s1->verify().ok());
  EXPECT_TRUE(s2->verify().ok());
  EXPECT_TRUE(p1->verify().ok());
  // The parent's releases still reach the daemon and make the room.
  EXPECT_FALSE(slots.broken() || plain.broken());
  s1->release();
  s2->release();
  p1->release();
  auto f2 = other.acquire("f2");
  EXPECT_TRUE(f2.ok()) << f2.status().to_string() << d.log();
}

TEST(Fork, AChildUsingAnInheritedClientIsToldToConnectAgain) {
  Daemon d;
  d.add_adapter("g", megabyte_adapter(110));
  Client c = d.connect();
  auto held = c.acquire("g");
  auto through_slot = c.acquire("g");
  ASSERT_TRUE(held.ok() && through_slot.ok());

  const int code = in_child([&] {
    int wrong = 0;
    const auto refused = [&](const Status& s) {
      if (s.code() != Errc::not_connected ||
          s.message().find("child of fork()") == std::string::npos ||
          s.message().find("connect() again") == std::string::npos)
        ++wrong;
    };
    refused(c.acquire("g").status());  // would go through the slot
    refused(c.acquire(std::vector<std::string>{"g", "g"}).status());
    refused(c.load("g").status());
    refused(c.unload("g").status());
    refused(c.list().status());
    refused(c.stats().status());
    refused(c.health().status());
    if (!c.broken()) ++wrong;
    // Its own connection serves it.
    auto own = Client::connect(d.socket_path());
    if (!own.ok()) return 100;
    auto mine = own->acquire("g");
    if (!mine.ok() || !mine->verify().ok()) return 101;
    return wrong;
  });
  EXPECT_EQ(code, 0) << d.log();
  // The parent's connection read, wrote and lost nothing.
  EXPECT_FALSE(c.broken());
  EXPECT_TRUE(eventually([&] { return listed_leases(c, "g") == 2; })) << d.log();
  auto third = c.acquire("g");
  ASSERT_TRUE(third.ok()) << third.status().to_string();
  EXPECT_TRUE(held->verify().ok());
}

}  // namespace
}  // namespace genomed::testing
