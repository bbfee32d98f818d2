// RELOAD with the real daemon and workers (issue 23): the adapter's current
// files load as a new generation beside the one in use and are swapped in
// once verified. Leases of the old and the new coexist and read their own
// bytes; an acquire during a swap never gets `draining`; a failed swap
// leaves the old serving; both generations count in the budget while both
// live, and one that cannot fit fails like any load.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/daemon_fixture.h"
#include "integration/file_tensors.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

const fixture::AdapterSpec kV1{.rank = 8, .layers = 2, .hidden = 64, .seed = 3};
const fixture::AdapterSpec kV2{.rank = 8, .layers = 2, .hidden = 64, .seed = 4};

// Every tensor of `lease` holds the bytes of the file's tensor of its name.
void expect_bytes_of(const Lease& lease, const std::string& weights_file) {
  const auto file = read_file_tensors(weights_file);
  ASSERT_EQ(file.size(), lease.tensors().size());
  for (const TensorView& t : lease.tensors()) {
    const auto it = file.find(std::string(t.name));
    ASSERT_NE(it, file.end()) << t.name;
    ASSERT_EQ(it->second.bytes.size(), t.data.size()) << t.name;
    EXPECT_EQ(std::memcmp(it->second.bytes.data(), t.data.data(), t.data.size()), 0) << t.name;
  }
}

void reload_both_ways(bool slots) {
  Daemon daemon;
  const std::string dir = daemon.add_adapter("a", kV1);
  // v1's file, kept aside: the directory will hold v2.
  const std::string v1_weights = daemon.dir() + "/v1.safetensors";
  {
    const std::string bytes = read_file(dir + "/adapter_model.safetensors");
    std::FILE* f = std::fopen(v1_weights.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
    ASSERT_EQ(std::fclose(f), 0);
  }
  Client client = slots ? daemon.connect() : daemon.connect_without_slots();
  auto old_lease = client.acquire("a");
  ASSERT_TRUE(old_lease.ok()) << old_lease.status().to_string();
  const std::uint64_t one = stat_on(client, "bytes_resident");
  ASSERT_GT(one, 0u);

  daemon.add_adapter("a", kV2);  // the same names and shapes, other bytes
  auto swapped = client.reload("a");
  ASSERT_TRUE(swapped.ok()) << swapped.status().to_string() << "\n" << daemon.log();
  EXPECT_EQ(swapped->previous_generation, old_lease->generation());
  EXPECT_EQ(swapped->previous_digest, old_lease->digest());
  EXPECT_EQ(swapped->previous_leases, 1u);
  EXPECT_NE(swapped->generation, old_lease->generation());
  EXPECT_NE(swapped->digest, old_lease->digest());

  auto new_lease = client.acquire("a");
  ASSERT_TRUE(new_lease.ok()) << new_lease.status().to_string();
  EXPECT_EQ(new_lease->generation(), swapped->generation);
  EXPECT_EQ(new_lease->digest(), swapped->digest);
  EXPECT_NE(new_lease->bytes().data(), old_lease->bytes().data());
  // Each reads its own version, whole.
  expect_bytes_of(*old_lease, v1_weights);
  expect_bytes_of(*new_lease, dir + "/adapter_model.safetensors");
  EXPECT_TRUE(old_lease->verify().ok());
  EXPECT_TRUE(new_lease->verify().ok());

  // Both in the budget while both live; LIST shows the name once, new.
  EXPECT_EQ(stat_on(client, "bytes_resident"), 2 * one);
  auto listing = client.list();
  ASSERT_TRUE(listing.ok());
  ASSERT_EQ(listing->size(), 1u);
  EXPECT_EQ(listing->front().generation, swapped->generation);
  EXPECT_EQ(listing->front().digest, swapped->digest);

  old_lease->release();
  EXPECT_EQ(stat_on(client, "bytes_resident"), one) << "the old generation is freed";
  new_lease->release();
  EXPECT_EQ(stat_on(client, "bytes_resident"), one) << "the new one stays resident";
  EXPECT_EQ(stat_on(client, "adapters_resident"), 1u);
}

TEST(Reload, OldAndNewLeasesCoexistReadTheirOwnBytesAndTheOldIsFreedWithItsLastLease) {
  reload_both_ways(/*slots=*/false);
}

TEST(Reload, TheSameThroughLeaseSlots) { reload_both_ways(/*slots=*/true); }

TEST(Reload, AcquiresDuringSwapsNeverFailAndEachReadsExactlyOneVersion) {
  Daemon daemon;
  daemon.add_adapter("a", kV1);
  Client control = daemon.connect();
  auto first = control.load("a");
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  std::set<std::string> digests{first->digest};

  std::atomic<bool> done{false};
  std::atomic<int> acquires{0};
  std::vector<std::string> failures;
  std::vector<std::string> seen;
  std::thread reader([&] {
    Client client = daemon.connect();
    // At least one acquire after the last swap (the loop checks `done` first).
    for (bool last = false; !last;) {
      last = done.load();
      auto lease = client.acquire("a");
      if (!lease.ok()) {
        failures.push_back(lease.status().to_string());
        continue;
      }
      if (Status s = lease->verify(); !s.ok()) failures.push_back(s.to_string());
      seen.push_back(lease->digest());
      acquires.fetch_add(1);
    }
  });
  for (std::uint64_t seed = 10; seed < 16; ++seed) {
    fixture::AdapterSpec next = kV1;
    next.seed = seed;
    daemon.add_adapter("a", next);
    auto r = control.reload("a");
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    digests.insert(r->digest);
  }
  done = true;
  reader.join();
  EXPECT_TRUE(failures.empty()) << failures.front();
  ASSERT_FALSE(seen.empty());
  for (const std::string& d : seen) EXPECT_TRUE(digests.count(d)) << d;
  auto last = control.acquire("a");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(seen.back(), last->digest()) << "an acquire after the last swap gets the last version";
}

TEST(Reload, ACorruptNewFileLeavesTheOldGenerationServing) {
  Daemon daemon;
  const std::string dir = daemon.add_adapter("a", kV1);
  Client client = daemon.connect();
  auto before = client.acquire("a");
  ASSERT_TRUE(before.ok());
  {
    std::FILE* f = std::fopen((dir + "/adapter_model.safetensors").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite("abc", 1, 3, f), 3u);
    ASSERT_EQ(std::fclose(f), 0);
  }
  auto failed = client.reload("a");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.code(), Errc::st_file_too_short) << failed.status().to_string();

  auto after = client.acquire("a");
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_EQ(after->generation(), before->generation());
  EXPECT_EQ(after->digest(), before->digest());
  EXPECT_TRUE(after->verify().ok());
  before->release();
  after->release();
  EXPECT_EQ(stat_on(client, "adapters_resident"), 1u);
  EXPECT_EQ(stat_on(client, "bytes_reserved"), 0u);
}

TEST(Reload, ASwapThatCannotFitFailsLikeAnyLoadAndTheOldServesOn) {
  // Room for one copy of a 1 MiB adapter, not two.
  Daemon daemon({.budget_bytes = 3ull << 19, .admission_timeout_ms = 200});
  daemon.add_adapter("a", megabyte_adapter(1));
  Client client = daemon.connect();
  auto held = client.acquire("a");
  ASSERT_TRUE(held.ok()) << held.status().to_string();
  daemon.add_adapter("a", megabyte_adapter(2));
  auto r = client.reload("a");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::no_space) << r.status().to_string();
  auto again = client.acquire("a");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->generation(), held->generation());

  // Unleased, the old one still lives until the swap: no room for both.
  held->release();
  again->release();
  EXPECT_EQ(client.reload("a").code(), Errc::no_space);
  EXPECT_EQ(stat_on(client, "adapters_resident"), 1u);
}

TEST(Reload, AnUnleasedOldGenerationIsFreedAtTheSwap) {
  Daemon daemon;
  daemon.add_adapter("a", kV1);
  Client client = daemon.connect();
  ASSERT_TRUE(client.load("a").ok());
  const std::uint64_t one = stat_on(client, "bytes_resident");
  daemon.add_adapter("a", kV2);
  auto r = client.reload("a");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->previous_leases, 0u);
  EXPECT_NE(r->previous_generation, 0u);
  EXPECT_EQ(stat_on(client, "bytes_resident"), one);
  EXPECT_EQ(stat_on(client, "leases_active"), 0u);
}

TEST(Reload, ANameNotResidentIsLoadedAndGenomectlReloads) {
  Daemon daemon;
  daemon.add_adapter("a", kV1);
  Client client = daemon.connect();
  auto r = client.reload("a");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->previous_generation, 0u);
  EXPECT_EQ(r->digest.size(), 32u);

  daemon.add_adapter("a", kV2);
  const CommandResult out =
      run_command({binary("genomectl"), "--socket", daemon.socket_path(), "reload", "a"});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_NE(out.out.find("replaces generation " + std::to_string(r->generation)),
            std::string::npos)
      << out.out;
  auto lease = client.acquire("a");
  ASSERT_TRUE(lease.ok());
  EXPECT_NE(lease->digest(), r->digest);
  EXPECT_NE(out.out.find(lease->digest()), std::string::npos) << out.out;

  EXPECT_EQ(client.reload("no/such").code(), Errc::not_found);
}

TEST(Reload, TheNewGenerationKeepsTheNamesKeepAliveAndPin) {
  Daemon daemon({.extra_args = {"--idle-unload", "1h"}});
  daemon.add_adapter("a", kV1);
  daemon.add_adapter("b", kV1);
  Client client = daemon.connect();
  LoadOptions never;
  never.keep_alive = std::chrono::milliseconds(0);
  ASSERT_TRUE(client.load("a", never).ok());
  ASSERT_TRUE(client.pin("b").ok());
  daemon.add_adapter("a", kV2);
  daemon.add_adapter("b", kV2);
  ASSERT_TRUE(client.reload("a").ok());
  ASSERT_TRUE(client.reload("b").ok());
  auto listing = client.list();
  ASSERT_TRUE(listing.ok());
  ASSERT_EQ(listing->size(), 2u);
  EXPECT_EQ(listing->at(0).expires_in_ms, std::nullopt) << "keep-alive 0 (never) kept";
  EXPECT_TRUE(listing->at(1).pinned) << "the pin moved to the new generation";
  EXPECT_EQ(stat_on(client, "adapters_pinned"), 1u);
}

TEST(Reload, NoClientCanNameAGenerationBesideTheServedOne) {
  Daemon daemon;
  daemon.add_adapter("a", kV1);
  Client client = daemon.connect_without_slots();
  auto old = client.acquire("a");
  ASSERT_TRUE(old.ok());
  daemon.add_adapter("a", kV2);
  ASSERT_TRUE(client.reload("a").ok());
  // The retired generation lives under "a\0<generation>" while `old` holds it.
  const std::string retired = std::string("a") + '\0' + std::to_string(old->generation());
  EXPECT_EQ(client.acquire(retired).code(), Errc::invalid_name);
  EXPECT_EQ(client.unload(retired).code(), Errc::invalid_name);
  EXPECT_EQ(client.pin(retired).code(), Errc::invalid_name);
  EXPECT_EQ(client.acquire(std::string("a") + '\0' + "next").code(), Errc::invalid_name);
  EXPECT_EQ(stat_on(client, "adapters_resident"), 2u) << "nothing was freed or loaded";
}

}  // namespace
}  // namespace genomed::testing
