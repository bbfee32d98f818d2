// The arena in huge pages end to end (issue 24), with the real daemon and
// workers: genomed collapses its arena into 2 MiB pages in the background
// (whatever shmem_enabled says but `deny`, from Linux 6.1) and says so in
// its log; a load's bytes filled into them are the file's; and a client's
// mapping of the arena maps them whole, so touching an adapter faults per
// 2 MiB. What a user sees is the log line and ShmemPmdMapped in their own
// process's smaps, so that is what this checks.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "common/huge_pages.h"
#include "integration/daemon_fixture.h"

namespace genomed::testing {
namespace {

// The kB of shared memory this process maps with PMDs (huge pages).
std::uint64_t shmem_pmd_mapped_kb() {
  std::ifstream in("/proc/self/smaps_rollup");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("ShmemPmdMapped:")) return std::stoull(line.substr(15));
  }
  ADD_FAILURE() << "no ShmemPmdMapped in /proc/self/smaps_rollup";
  return 0;
}

TEST(HugePages, TheArenaIsCollapsedAndAClientMapsALoadedAdapterWhole) {
  Daemon daemon({.budget_bytes = 64ull << 20});
  // The prefault runs in the background after start-up and logs its end.
  ASSERT_TRUE(eventually([&] { return daemon.log().find("faulted in") != std::string::npos; }))
      << daemon.log();
  const bool collapsible = huge_pages_collapsible();
  if (collapsible) {
    EXPECT_NE(daemon.log().find("64.0 MiB of it in 2 MiB pages"), std::string::npos)
        << daemon.log();
  } else {
    EXPECT_NE(daemon.log().find("this kernel collapses none"), std::string::npos) << daemon.log();
  }

  // 16 MiB of weights: several whole huge pages whatever the range's place.
  daemon.add_adapter("a", {.rank = 64, .layers = 8, .hidden = 4096, .seed = 7});
  Client client = daemon.connect();
  const std::uint64_t before = shmem_pmd_mapped_kb();
  auto lease = client.acquire("a");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  std::uint64_t sum = 0;
  for (const auto& t : lease->tensors()) {
    for (std::size_t i = 0; i < t.data.size(); i += 4096) sum += static_cast<std::uint8_t>(t.data[i]);
  }
  EXPECT_GT(sum, 0u);  // the touches happened (random weights)
  EXPECT_TRUE(lease->verify().ok());
  const std::uint64_t mapped = shmem_pmd_mapped_kb() - before;
  if (collapsible) {
    EXPECT_GE(mapped, 12u * 1024) << "of a 16 MiB adapter, in kB";
  } else {
    EXPECT_EQ(mapped, 0u);
  }
}

}  // namespace
}  // namespace genomed::testing
