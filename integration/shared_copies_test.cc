// Identical bytes once, with the real daemon and workers (issue 23): two
// names whose content digests are equal stand on one resident copy, which
// bytes_resident counts once; their leases read the same bytes; unloading
// one name keeps the copy while the other (or any lease) holds it; eviction
// frees a shared copy only when none of its names is held, all its names
// together; a RELOAD of one name leaves the other on the old content; pins
// are each name's and count the copy once. Different content shares nothing.
//
// Clients connect without lease slots: every release is a message that the
// next request on the same connection sees applied, and no slot's reference
// bit reorders the LRU behind the test's back.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "integration/daemon_fixture.h"

namespace genomed::testing {
namespace {

const fixture::AdapterSpec kV1{.rank = 8, .layers = 2, .hidden = 64, .seed = 3};
const fixture::AdapterSpec kV2{.rank = 8, .layers = 2, .hidden = 64, .seed = 4};

// A daemon whose adapters "a" and "b" are the same files, and a client.
struct Twins {
  Daemon daemon;
  std::string dir_a = daemon.add_adapter("a", kV1);
  std::string dir_b = daemon.add_adapter("b", kV1);
  Client client = daemon.connect_without_slots();
};

// The resident names LIST shows, in name order, each with its digest.
std::vector<std::pair<std::string, std::string>> listed(Client& client) {
  auto list = client.list();
  EXPECT_TRUE(list.ok()) << list.status().to_string();
  std::vector<std::pair<std::string, std::string>> out;
  if (list.ok()) {
    for (const AdapterInfo& a : *list) out.emplace_back(a.name, a.digest);
  }
  return out;
}

// Acquires `name` on `client`; fails the test if it cannot.
Lease leased(Client& client, const std::string& name) {
  auto lease = client.acquire(name);
  EXPECT_TRUE(lease.ok()) << name << ": " << lease.status().to_string();
  if (!lease.ok()) throw std::runtime_error("acquire of " + name + " failed");
  return std::move(lease).value();
}

TEST(SharedCopies, TwoNamesWithTheSameFilesHoldOneCopyCountedOnce) {
  Daemon daemon;
  daemon.add_adapter("a", kV1);
  daemon.add_adapter("twin/of/a", kV1);
  Client client = daemon.connect_without_slots();
  Lease a = leased(client, "a");
  const std::uint64_t one = stat_on(client, "bytes_resident");
  ASSERT_GT(one, 0u);

  Lease twin = leased(client, "twin/of/a");
  EXPECT_EQ(stat_on(client, "bytes_resident"), one) << "the same bytes are resident once";
  EXPECT_EQ(twin.digest(), a.digest());
  EXPECT_NE(twin.generation(), a.generation()) << "each name's load is a generation of its own";
  // The grants point at the same bytes of the arena.
  EXPECT_EQ(twin.bytes().data(), a.bytes().data());
  EXPECT_EQ(twin.bytes().size(), a.bytes().size());
  EXPECT_TRUE(twin.verify().ok());
  EXPECT_EQ(stat_on(client, "loads_shared"), 1u);
  EXPECT_EQ(stat_on(client, "shared_copies"), 1u);
  EXPECT_EQ(stat_on(client, "bytes_shared"), one);
  EXPECT_EQ(stat_on(client, "adapters_resident"), 2u);
  EXPECT_EQ(listed(client), (std::vector<std::pair<std::string, std::string>>{
                                {"a", a.digest()}, {"twin/of/a", a.digest()}}));

  // A client with lease slots sees the same copy under both names.
  Client slotted = daemon.connect();
  Lease via_slot = leased(slotted, "twin/of/a");
  Lease again = leased(slotted, "twin/of/a");  // through the slot
  EXPECT_EQ(again.bytes().data() - slotted.arena().data(), a.bytes().data() - client.arena().data())
      << "the same offset in the arena for both names and both clients";
  EXPECT_TRUE(again.verify().ok());
}

TEST(SharedCopies, UnloadingOneNameKeepsTheCopyWhileTheOtherHoldsItAndBothFreeIt) {
  Twins twins;
  Client& client = twins.client;
  ASSERT_TRUE(client.load("a").ok());
  const std::uint64_t one = stat_on(client, "bytes_resident");
  Lease b = leased(client, "b");
  ASSERT_EQ(stat_on(client, "bytes_resident"), one);

  // a is unleased: the name goes at once, the bytes stay under b's lease.
  auto unloaded = client.unload("a");
  ASSERT_TRUE(unloaded.ok()) << unloaded.status().to_string();
  EXPECT_EQ(unloaded->outcome, "freed");
  EXPECT_EQ(stat_on(client, "bytes_resident"), one);
  EXPECT_EQ(stat_on(client, "shared_copies"), 0u);
  EXPECT_TRUE(b.verify().ok()) << "b's bytes were not reused";
  Lease b2 = leased(client, "b");
  EXPECT_EQ(b2.bytes().data(), b.bytes().data()) << "b is still served from the same copy";
  EXPECT_EQ(listed(client).size(), 1u);

  // a comes back (a new load) and joins the copy b holds.
  Lease a = leased(client, "a");
  EXPECT_EQ(a.bytes().data(), b.bytes().data());
  EXPECT_EQ(stat_on(client, "bytes_resident"), one);
  // UNLOAD of a leased name drains that name only: b is not draining.
  auto draining = client.unload("b");
  ASSERT_TRUE(draining.ok());
  EXPECT_EQ(draining->outcome, "draining");
  EXPECT_TRUE(client.acquire("a").ok()) << "a is served while b drains";
  b.release();
  b2.release();
  EXPECT_EQ(stat_on(client, "bytes_resident"), one) << "a still holds the copy";
  EXPECT_TRUE(a.verify().ok());
  a.release();
  auto last = client.unload("a");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->outcome, "freed");
  EXPECT_EQ(stat_on(client, "bytes_resident"), 0u) << "the last name freed the copy";
  EXPECT_EQ(stat_on(client, "adapters_resident"), 0u);
}

TEST(SharedCopies, EvictionFreesASharedCopyOnlyWithAllItsNamesAndNeverWhileOneIsLeased) {
  // Room for two copies of about 1 MiB (each is a little over it), not three.
  Daemon daemon({.budget_bytes = 3ull << 20});
  daemon.add_adapter("a", megabyte_adapter(1));
  daemon.add_adapter("twin", megabyte_adapter(1));
  daemon.add_adapter("c", megabyte_adapter(2));
  daemon.add_adapter("d", megabyte_adapter(3));
  daemon.add_adapter("e", megabyte_adapter(4));
  Client client = daemon.connect_without_slots();
  ASSERT_TRUE(client.load("a").ok());  // the least recently used name
  Lease twin = leased(client, "twin");
  ASSERT_TRUE(client.load("c").ok());
  EXPECT_EQ(stat_on(client, "evictions"), 0u) << "a and twin are one copy: c fits beside it";

  // d needs room: a is the least recently used, but twin's lease holds
  // their copy, so evicting a would free nothing: c goes.
  ASSERT_TRUE(client.load("d").ok());
  const auto names = [&] {
    std::vector<std::string> out;
    for (const auto& [name, digest] : listed(client)) out.push_back(name);
    return out;
  };
  EXPECT_EQ(names(), (std::vector<std::string>{"a", "d", "twin"}));
  EXPECT_EQ(stat_on(client, "evictions"), 1u);
  EXPECT_TRUE(twin.verify().ok());

  // Unleased now, twin used after d: the copy is as recent as its most
  // recent name, so d (older) would go first. Use d again: the copy of a
  // and twin is the least recent, and goes whole for e.
  twin.release();
  ASSERT_TRUE(client.load("d").ok());
  ASSERT_TRUE(client.load("e").ok());
  EXPECT_EQ(names(), (std::vector<std::string>{"d", "e"}));
  EXPECT_EQ(stat_on(client, "evictions"), 3u) << "both names of the copy";
  EXPECT_EQ(stat_on(client, "shared_copies"), 0u);
}

TEST(SharedCopies, AReloadOfOneNameLeavesTheOtherOnTheOldContent) {
  Twins twins;
  Client& client = twins.client;
  Lease a_old = leased(client, "a");
  Lease b_old = leased(client, "b");
  const std::uint64_t one = stat_on(client, "bytes_resident");
  ASSERT_EQ(b_old.bytes().data(), a_old.bytes().data());

  // The same files again: the new generation joins the copy it shares.
  auto same = client.reload("b");
  ASSERT_TRUE(same.ok()) << same.status().to_string();
  EXPECT_EQ(same->digest, b_old.digest());
  EXPECT_NE(same->generation, b_old.generation());
  EXPECT_EQ(stat_on(client, "bytes_resident"), one) << "three generations, one copy";
  Lease b_new = leased(client, "b");
  EXPECT_EQ(b_new.generation(), same->generation);
  EXPECT_EQ(b_new.bytes().data(), a_old.bytes().data());

  // New files for a: a serves them; b keeps the old content and copy.
  twins.daemon.add_adapter("a", kV2);
  auto swapped = client.reload("a");
  ASSERT_TRUE(swapped.ok()) << swapped.status().to_string();
  EXPECT_NE(swapped->digest, a_old.digest());
  Lease a_new = leased(client, "a");
  Lease b_now = leased(client, "b");
  EXPECT_EQ(a_new.digest(), swapped->digest);
  EXPECT_NE(a_new.bytes().data(), b_now.bytes().data());
  EXPECT_EQ(b_now.digest(), a_old.digest());
  EXPECT_EQ(b_now.bytes().data(), a_old.bytes().data());
  EXPECT_TRUE(b_now.verify().ok());
  EXPECT_TRUE(a_old.verify().ok()) << "the retired generation's lease reads the old bytes";
  EXPECT_EQ(listed(client), (std::vector<std::pair<std::string, std::string>>{
                                {"a", swapped->digest}, {"b", b_old.digest()}}));
  EXPECT_EQ(stat_on(client, "bytes_resident"), 2 * one);
}

TEST(SharedCopies, PinsAreEachNamesAndCountTheCopyOnce) {
  Twins twins;
  Client& client = twins.client;
  ASSERT_TRUE(client.pin("a").ok());
  const std::uint64_t one = stat_on(client, "bytes_pinned");
  ASSERT_GT(one, 0u);
  ASSERT_TRUE(client.pin("b").ok());
  EXPECT_EQ(stat_on(client, "bytes_pinned"), one);
  EXPECT_EQ(stat_on(client, "adapters_pinned"), 2u);
  ASSERT_TRUE(client.unpin("a").ok());
  auto unloaded = client.unload("a");
  ASSERT_TRUE(unloaded.ok()) << unloaded.status().to_string();
  EXPECT_EQ(stat_on(client, "bytes_pinned"), one) << "b pins the copy still";
  EXPECT_EQ(stat_on(client, "bytes_resident"), one);
  auto refused = client.unload("b");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Errc::pinned);
}

TEST(SharedCopies, DifferentContentSharesNothing) {
  Daemon daemon;
  daemon.add_adapter("a", kV1);
  daemon.add_adapter("b", kV2);  // the same names and shapes, other bytes
  Client client = daemon.connect_without_slots();
  Lease a = leased(client, "a");
  const std::uint64_t one = stat_on(client, "bytes_resident");
  Lease b = leased(client, "b");
  EXPECT_NE(b.digest(), a.digest());
  EXPECT_NE(b.bytes().data(), a.bytes().data());
  EXPECT_EQ(stat_on(client, "bytes_resident"), 2 * one);
  EXPECT_EQ(stat_on(client, "loads_shared"), 0u);
  EXPECT_EQ(stat_on(client, "shared_copies"), 0u);
  EXPECT_EQ(stat_on(client, "bytes_shared"), 0u);
}

}  // namespace
}  // namespace genomed::testing
