// A load's progress against the real daemon: while a fill hangs (fault
// injection), LIST shows the entry loading with its size and no bytes
// filled, and `genomectl load` (stderr not a terminal) prints plain progress
// lines while it waits.
#include <gtest/gtest.h>

#include <thread>

#include "integration/daemon_fixture.h"

namespace genomed::testing {
namespace {

TEST(LoadProgress, AHungFillShowsInListAndInGenomectlLoad) {
  Daemon daemon({.load_timeout_ms = 5000, .extra_args = {"--worker-fault", "hang@fill:slow"}});
  daemon.add_adapter("slow", megabyte_adapter(1));
  CommandResult load;
  std::thread t([&] {
    load = run_command({binary("genomectl"), "--socket", daemon.socket_path(), "load", "slow"});
  });
  Client client = daemon.connect();
  std::optional<AdapterInfo> seen;
  ASSERT_TRUE(eventually([&] {
    auto list = client.list();
    if (!list.ok() || list->empty() || (*list)[0].fill_total == 0) return false;
    seen = (*list)[0];
    return true;
  }));
  EXPECT_EQ(seen->state, "loading");
  EXPECT_EQ(seen->filled, 0u) << "its only part hangs";
  t.join();  // the fill misses its deadline: the load fails
  EXPECT_EQ(load.exit_code, 1) << load.out << load.err;
  EXPECT_NE(load.err.find("error: timeout:"), std::string::npos) << load.err;
  EXPECT_NE(load.err.find("loading slow: 0% (0 of " + std::to_string(seen->fill_total) + " bytes)"),
            std::string::npos)
      << load.err;
}

}  // namespace
}  // namespace genomed::testing
