// Lease slots with the real daemon (docs/protocol.md, "Lease slots"): after
// one ACQUIRE over the socket, the client library takes and gives back
// further leases on that adapter in shared memory; the daemon wants a slot
// back when it needs the memory (admission, UNLOAD, idle unload, drain) and
// never loses a lease that is held through one.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"
#include "integration/raw_socket.h"
#include "layout/lease_slot.h"

namespace genomed::testing {
namespace {

std::vector<std::string> resident_names(Client& c) {
  std::vector<std::string> names;
  auto list = c.list();
  EXPECT_TRUE(list.ok()) << list.status().to_string();
  if (list.ok())
    for (const auto& a : *list) names.push_back(a.name);
  return names;
}

// A STATS value over a connection the test has (during the drain the
// socket is gone: Daemon::stat cannot connect).
std::uint64_t stat_of(Client& c, const std::string& key) {
  auto stats = c.stats();
  EXPECT_TRUE(stats.ok()) << stats.status().to_string();
  if (stats.ok()) {
    for (const auto& [k, v] : *stats)
      if (k == key) return std::get<std::uint64_t>(v);
  }
  ADD_FAILURE() << "no STATS key " << key;
  return 0;
}

// A raw connection that asked for lease slots, with its page mapped: what a
// client with a bug, or a hostile one, can do with it.
struct RawSlotClient {
  explicit RawSlotClient(const std::string& socket) : raw(socket) {
    ipc::Request hello;
    hello.op = ipc::Op::hello;
    hello.version = ipc::kProtocolVersion;
    hello.client = "raw-slots";
    hello.lease_slots = true;
    raw.send(hello);
    auto reply = ipc::read_frame(raw.fd(), ipc::kMaxReplyFrame, std::nullopt, /*max_fds=*/2);
    EXPECT_TRUE(reply.ok()) << reply.status().to_string();
    if (!reply) return;
    auto h = ipc::decode_hello_reply(reply->body);
    EXPECT_TRUE(h.ok() && h->lease_slots == ipc::kLeaseSlotsPerConnection);
    EXPECT_EQ(reply->fds.size(), 2u);
    if (h.ok() && reply->fds.size() == 2) {
      bytes = layout::lease_slot_page_bytes(h->lease_slots);
      // Sealed: the client cannot shrink the page under the daemon's mapping.
      EXPECT_NE(::ftruncate(reply->fds[1], 0), 0);
      void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, reply->fds[1], 0);
      EXPECT_NE(p, MAP_FAILED);
      if (p != MAP_FAILED) page = p;
    }
    for (int fd : reply->fds) ::close(fd);
  }
  ~RawSlotClient() {
    if (page != nullptr) ::munmap(page, bytes);
  }
  // ACQUIRE over the socket; the grant (with its slot).
  ipc::LeaseGrant acquire(const std::string& name) {
    ipc::Request req;
    req.op = ipc::Op::acquire;
    req.names = {name};
    raw.send(req);
    auto frame = raw.reply();
    EXPECT_TRUE(frame.ok());
    if (!frame) return {};
    auto reply = ipc::decode_acquire_reply(frame->body);
    EXPECT_TRUE(reply.ok()) << frame->body;
    return reply.ok() ? reply->grants.at(0) : ipc::LeaseGrant{};
  }
  layout::LeaseSlot& slot(std::uint32_t i) {
    return reinterpret_cast<layout::LeaseSlot*>(static_cast<char*>(page) +
                                                sizeof(layout::LeaseSlotHeader))[i];
  }

  RawSocket raw;
  void* page = nullptr;
  std::size_t bytes = 0;
};

TEST(LeaseSlots, RepeatedAcquiresOfOneAdapterSendNoRequest) {
  Daemon d;
  d.add_adapter("a", megabyte_adapter(1));
  Client c = d.connect();
  std::string first_bytes;
  {
    auto lease = c.acquire("a");  // over the socket: grants the slot
    ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    first_bytes.assign(reinterpret_cast<const char*>(lease->bytes().data()), lease->bytes().size());
  }
  const auto granted = d.stat("leases_granted");
  for (int i = 0; i < 100; ++i) {
    auto lease = c.acquire("a");
    ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    ASSERT_EQ(std::string(reinterpret_cast<const char*>(lease->bytes().data()),
                          lease->bytes().size()),
              first_bytes);
  }
  EXPECT_EQ(d.stat("leases_granted"), granted) << "an acquire through the slot asked the daemon";
  EXPECT_EQ(d.stat("slot_hits"), 100u);
  EXPECT_EQ(d.stat("hits"), 100u);  // the first acquire was a miss
  EXPECT_EQ(d.stat("lease_slots"), 1u);
  // The slot holds a lease (the adapter stays resident) that no client uses.
  EXPECT_EQ(d.stat("leases_active"), 0u);

  // A client without slots asks every time.
  ClientOptions plain;
  plain.lease_slots = false;
  auto p = Client::connect(d.socket_path(), plain);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(p->acquire("a").ok());
  EXPECT_EQ(d.stat("leases_granted"), granted + 3);
  EXPECT_EQ(d.stat("lease_slots"), 1u);
}

TEST(LeaseSlots, AnIdleSlotGivesItsAdapterUpWhenAnotherNeedsTheRoom) {
  Daemon d({.budget_bytes = 3ull << 20, .admission_timeout_ms = 20000});
  for (int i = 0; i < 3; ++i) d.add_adapter("r" + std::to_string(i), megabyte_adapter(10 + i));
  Client a = d.connect();
  ASSERT_TRUE(a.acquire("r0").ok());  // slots on r0 and r1, both idle after
  ASSERT_TRUE(a.acquire("r1").ok());
  ASSERT_TRUE(a.acquire("r1").ok());  // r1 used through its slot since: more recent than r0
  EXPECT_EQ(d.stat("lease_slots"), 2u);

  Client b = d.connect();
  auto r2 = b.acquire("r2");  // needs one adapter's room: the slots are revoked, r0 evicted
  ASSERT_TRUE(r2.ok()) << r2.status().to_string() << d.log();
  EXPECT_EQ(resident_names(b), (std::vector<std::string>{"r1", "r2"}))
      << "the adapter used through its slot more recently must stay";
  // The revoked slots send the next acquire to the daemon, which loads r0 again.
  r2->release();
  auto again = a.acquire("r0");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(d.stat("loads_completed"), 4u);
}

TEST(LeaseSlots, ALeaseHeldThroughASlotIsNeverEvictedAndItsReleaseUnblocksTheWaiter) {
  Daemon d({.budget_bytes = 2ull << 20, .admission_timeout_ms = 60000});
  d.add_adapter("h0", megabyte_adapter(20));
  d.add_adapter("h1", megabyte_adapter(21));
  Client a = d.connect();
  ASSERT_TRUE(a.acquire("h0").ok());
  auto held = a.acquire("h0");  // through the slot
  ASSERT_TRUE(held.ok());
  ASSERT_EQ(d.stat("slot_hits"), 1u);

  Client b = d.connect();
  std::atomic<bool> done{false};
  Status got;
  std::thread waiter([&] {
    got = b.acquire("h1").status();
    done = true;
  });
  ASSERT_TRUE(eventually([&] { return d.stat("admission_waiting") == 1; })) << d.log();
  EXPECT_FALSE(done.load());
  EXPECT_TRUE(held->verify().ok()) << "the leased adapter was evicted";
  // The slot is wanted now: the next acquire asks the daemon (a hit: it is
  // resident and leased), and the last give-back sends RELEASE.
  auto second = a.acquire("h0");
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_EQ(d.stat("slot_hits"), 1u);
  second->release();
  EXPECT_FALSE(done.load());
  held->release();
  waiter.join();
  EXPECT_TRUE(got.ok()) << got.to_string() << d.log();
  EXPECT_EQ(d.stat("leases_active"), 0u);
}

TEST(LeaseSlots, UnloadFreesAnAdapterWhoseSlotIsIdleAndDrainsABusyOne) {
  Daemon d;
  d.add_adapter("u", megabyte_adapter(30));
  Client c = d.connect();
  ASSERT_TRUE(c.acquire("u").ok());  // slot granted, idle now
  auto freed = c.unload("u");
  ASSERT_TRUE(freed.ok()) << freed.status().to_string();
  EXPECT_EQ(freed->outcome, "freed");
  EXPECT_EQ(d.stat("leases_active"), 0u);

  ASSERT_TRUE(c.acquire("u").ok());  // loaded again, a new slot
  auto busy = c.acquire("u");
  ASSERT_TRUE(busy.ok());
  auto draining = c.unload("u");
  ASSERT_TRUE(draining.ok());
  EXPECT_EQ(draining->outcome, "draining");
  EXPECT_EQ(c.acquire("u").code(), Errc::draining) << "a draining adapter took a new lease";
  busy->release();
  EXPECT_TRUE(resident_names(c).empty()) << "the last release through the slot did not free it";
}

TEST(LeaseSlots, LeasesHeldThroughASlotEndWhenTheConnectionCloses) {
  Daemon d;
  d.add_adapter("k", megabyte_adapter(40));
  {
    RawSlotClient raw(d.socket_path());
    ASSERT_NE(raw.page, nullptr);
    const ipc::LeaseGrant g = raw.acquire("k");
    ASSERT_TRUE(g.slot.has_value()) << "no slot granted";
    ASSERT_TRUE(layout::take_slot_lease(raw.slot(*g.slot), g.slot_tag));
    EXPECT_EQ(layout::slot_word::count(raw.slot(*g.slot).word.load()), 2u);
    EXPECT_EQ(d.stat("lease_slots"), 1u);
  }  // closed with both leases held, as a client that dies
  EXPECT_TRUE(eventually([&] { return d.stat("leases_active") == 0; })) << d.log();
  EXPECT_EQ(d.stat("lease_slots"), 0u);
  Client c = d.connect();
  auto unloaded = c.unload("k");
  ASSERT_TRUE(unloaded.ok());
  EXPECT_EQ(unloaded->outcome, "freed");
}

TEST(LeaseSlots, AnIdleSlotDoesNotKeepItsAdapterFromTheIdleUnload) {
  Daemon d({.extra_args = {"--idle-unload", "200ms"}});
  d.add_adapter("i", megabyte_adapter(50));
  Client c = d.connect();
  ASSERT_TRUE(c.acquire("i").ok());
  ASSERT_TRUE(c.acquire("i").ok());  // through the slot
  EXPECT_TRUE(eventually([&] { return d.stat("idle_unloads") == 1; })) << d.log();
  EXPECT_EQ(d.stat("leases_active"), 0u);
  auto again = c.acquire("i");  // the slot was revoked: loads it again
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(d.stat("loads_completed"), 2u);
}

TEST(LeaseSlots, TheDrainEndsIdleSlotsAtOnceAndBusyOnesWithTheirRelease) {
  Daemon d({.extra_args = {"--drain-timeout", "10m"}});
  d.add_adapter("x", megabyte_adapter(60));
  d.add_adapter("y", megabyte_adapter(61));
  Client c = d.connect();
  ASSERT_TRUE(c.acquire("x").ok());  // idle slot
  ASSERT_TRUE(c.acquire("y").ok());
  auto busy = c.acquire("y");  // busy slot
  ASSERT_TRUE(busy.ok());
  d.signal(SIGTERM);
  ASSERT_TRUE(eventually([&] {
    auto h = c.health();
    return h.ok() && h->reason.find("draining") != std::string::npos;
  }));
  EXPECT_TRUE(eventually([&] { return stat_of(c, "lease_slots") == 1; })) << d.log();
  EXPECT_EQ(stat_of(c, "leases_active"), 1u);
  EXPECT_EQ(c.acquire("x").code(), Errc::shutting_down) << "a revoked slot must ask the daemon";
  EXPECT_EQ(c.acquire("y").code(), Errc::shutting_down) << "a wanted slot must ask the daemon";
  busy->release();
  const int status = d.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << d.log();
  EXPECT_NE(d.log().find("every lease was released"), std::string::npos) << d.log();
}

// A client that writes garbage into its own page: its leases look busy or
// wrong to itself, the daemon keeps serving everyone, garbage holds no
// memory the daemon wants back, and everything it held ends when it
// disconnects.
TEST(LeaseSlots, AClientScribblingOverItsPageHarmsOnlyItself) {
  Daemon d({.budget_bytes = 3ull << 20, .admission_timeout_ms = 20000});
  d.add_adapter("s0", megabyte_adapter(70));
  d.add_adapter("s1", megabyte_adapter(71));
  {
    RawSlotClient raw(d.socket_path());
    ASSERT_NE(raw.page, nullptr);
    ASSERT_TRUE(raw.acquire("s0").slot.has_value());
    ASSERT_TRUE(raw.acquire("s1").slot.has_value());
    std::memset(raw.page, 0xff, raw.bytes);  // header and slots: full counts, bad tags
    Client c = d.connect();
    auto h = c.health();
    ASSERT_TRUE(h.ok() && h->healthy) << d.log();
    // No honest client leaves such words: they hold nothing, and a third
    // adapter that needs the room gets it (their slots revoked, their
    // leases ended; the daemon does not spin on them).
    EXPECT_EQ(stat_of(c, "leases_active"), 0u);
    d.add_adapter("s2", megabyte_adapter(72));
    auto s2 = c.acquire("s2");
    ASSERT_TRUE(s2.ok()) << s2.status().to_string() << d.log();
    EXPECT_EQ(stat_of(c, "lease_slot_violations"), 2u);
    // Slots of another connection are not its to write: this one is fine.
    ASSERT_TRUE(c.acquire("s0").ok());
    auto s0 = c.acquire("s0");
    ASSERT_TRUE(s0.ok());
    EXPECT_TRUE(s0->verify().ok());
    EXPECT_TRUE(s2->verify().ok());
  }
  // Gone: everything it held ends with its connection.
  EXPECT_TRUE(eventually([&] { return d.stat("lease_slots") == 0; })) << d.log();
  Client c = d.connect();
  auto unloaded = c.unload("s0");
  ASSERT_TRUE(unloaded.ok());
  EXPECT_EQ(unloaded->outcome, "freed") << d.log();
}

// The figures a hostile page could once inflate (a count of 0xffffffff made
// STATS say 4,294,967,295 active leases): a word no honest client leaves is
// counted as holding nothing, counted once as a violation, and its slot
// gives up its adapter when the daemon needs the room; another client's
// leases, through its own slot, are untouched.
TEST(LeaseSlots, ImplausibleSlotWordsNeverReachTheFigures) {
  namespace w = layout::slot_word;
  Daemon d({.budget_bytes = 3ull << 20, .admission_timeout_ms = 20000});
  for (int i = 0; i < 3; ++i) d.add_adapter("v" + std::to_string(i), megabyte_adapter(80 + i));
  Client honest = d.connect();
  auto h1 = honest.acquire("v1");  // grants a slot
  auto h2 = honest.acquire("v1");  // through it
  ASSERT_TRUE(h1.ok() && h2.ok());
  RawSlotClient raw(d.socket_path());
  ASSERT_NE(raw.page, nullptr);
  const ipc::LeaseGrant g = raw.acquire("v0");
  ASSERT_TRUE(g.slot.has_value()) << "no slot granted";
  layout::LeaseSlot& slot = raw.slot(*g.slot);
  const std::uint64_t grant = slot.word.load();
  ASSERT_EQ(grant, w::granted(g.slot_tag));
  const std::uint64_t at = grant & ~w::kCountMask;  // the grant with count 0

  const std::uint64_t hostile[] = {
      at | w::kCountMask,                 // a full count
      at | (w::kMaxCount + 1),            // one past the most a slot holds
      grant ^ (1ull << w::kTagShift),     // another grant's tag
      at | w::kRevoked | 5,               // leases in a revoked slot
  };
  for (const std::uint64_t word : hostile) {
    slot.word.store(word);
    EXPECT_EQ(stat_of(honest, "leases_active"), 2u) << std::hex << word;
    EXPECT_EQ(listed_leases(honest, "v0"), 0u) << std::hex << word;
    EXPECT_EQ(listed_leases(honest, "v1"), 2u) << std::hex << word;
  }
  EXPECT_EQ(stat_of(honest, "lease_slot_violations"), 1u) << "one slot, counted once";

  // A count the contract allows is what the client says it holds: at most
  // kMaxCount, and an honest client takes no more.
  slot.word.store(at | w::kMaxCount);
  EXPECT_EQ(stat_of(honest, "leases_active"), 2u + w::kMaxCount);
  EXPECT_FALSE(layout::take_slot_lease(slot, g.slot_tag)) << "took past the slot's maximum";

  // Memory pressure: v2 needs one adapter's room. v0 is held only by the
  // hostile slot: revoked, its lease ended, v0 evicted. v1 stays.
  slot.word.store(at | w::kCountMask);
  auto v2 = honest.acquire("v2");
  ASSERT_TRUE(v2.ok()) << v2.status().to_string() << d.log();
  EXPECT_EQ(resident_names(honest), (std::vector<std::string>{"v1", "v2"}));
  EXPECT_TRUE(h1->verify().ok());
  EXPECT_TRUE(h2->verify().ok());
  EXPECT_EQ(stat_of(honest, "leases_active"), 3u);
  EXPECT_EQ(stat_of(honest, "lease_slot_violations"), 1u);
  ipc::Request health;  // a violation ends the slot, not the connection
  health.op = ipc::Op::health;
  raw.raw.send(health);
  EXPECT_TRUE(raw.raw.reply().ok()) << d.log();
}

TEST(LeaseSlots, AConnectionAtItsLeaseLimitGivesBackIdleSlotsFirst) {
  Daemon d({.extra_args = {"--max-leases-per-connection", "2"}});
  for (const char* n : {"l0", "l1", "l2"}) d.add_adapter(n, megabyte_adapter(n[1]));
  Client c = d.connect();
  ASSERT_TRUE(c.acquire("l0").ok());  // two idle slots: two leases the client does not hold
  ASSERT_TRUE(c.acquire("l1").ok());
  auto third = c.acquire("l2");
  ASSERT_TRUE(third.ok()) << third.status().to_string();
  // A lease it does hold through a slot still counts.
  auto a = c.acquire("l2");
  ASSERT_TRUE(a.ok());
  auto b = c.acquire(std::vector<std::string>{"l0", "l1"});
  EXPECT_EQ(b.code(), Errc::limit_exceeded) << b.status().to_string();
}

TEST(LeaseSlots, AnIdleConnectionIsClosedOnlyWhenItsSlotsAreUnused) {
  Daemon d({.extra_args = {"--idle-timeout-ms", "200"}});
  d.add_adapter("c", megabyte_adapter(90));
  Client busy = d.connect();
  Client idle = d.connect();
  ASSERT_TRUE(busy.acquire("c").ok());
  ASSERT_TRUE(idle.acquire("c").ok());
  // `busy` takes leases through its slot for five idle timeouts, sending
  // nothing: its slot's uses are its activity.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_TRUE(busy.acquire("c").ok()) << "closed while it used its slot";
  }
  EXPECT_TRUE(busy.health().ok()) << d.log();
  // `idle` did nothing: closed, its slot revoked and its lease ended.
  EXPECT_TRUE(eventually([&] { return !idle.health().ok(); })) << d.log();
  EXPECT_EQ(idle.acquire("c").code(), Errc::not_connected);
  EXPECT_TRUE(eventually([&] { return d.stat("lease_slots") == 1; })) << d.log();
}

TEST(LeaseSlots, AClientOfADaemonThatDiedStopsTakingThroughItsSlots) {
  Daemon d;
  d.add_adapter("z", megabyte_adapter(95));
  Client c = d.connect();
  ASSERT_TRUE(c.acquire("z").ok());
  ASSERT_TRUE(c.acquire("z").ok());  // through the slot
  d.signal(SIGKILL);
  d.wait();
  EXPECT_TRUE(eventually([&] { return c.acquire("z").code() == Errc::not_connected; }));
  EXPECT_TRUE(c.broken());
}

}  // namespace
}  // namespace genomed::testing
