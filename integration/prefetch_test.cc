// Priorities and prefetch against the real daemon, through genomectl: a
// prefetch takes free room only and is dropped with a typed error when it
// cannot fit; --priority is carried and its bad values refused.
#include <gtest/gtest.h>

#include "integration/daemon_fixture.h"

namespace genomed::testing {
namespace {

CommandResult ctl(const Daemon& daemon, std::vector<std::string> args) {
  args.insert(args.begin(), {binary("genomectl"), "--socket", daemon.socket_path()});
  return run_command(args);
}

TEST(Prefetch, APrefetchNeverEvictsAndIsDroppedWhenItDoesNotFit) {
  // About 1 MiB each: the budget holds two.
  Daemon daemon({.budget_bytes = (2ull << 20) + (64 << 10)});
  for (const char* name : {"a", "b", "c"}) daemon.add_adapter(name, megabyte_adapter(name[0]));
  const auto a = ctl(daemon, {"prefetch", "a"});
  ASSERT_EQ(a.exit_code, 0) << a.err << daemon.log();
  EXPECT_NE(a.out.find("a prefetched"), std::string::npos) << a.out;
  const auto b = ctl(daemon, {"load", "--priority", "high", "b"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto c = ctl(daemon, {"prefetch", "c"});
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.err.find("error: prefetch_dropped:"), std::string::npos) << c.err;
  EXPECT_EQ(daemon.stat("evictions"), 0u);
  EXPECT_EQ(daemon.stat("prefetches_dropped"), 1u);
  EXPECT_EQ(daemon.stat("adapters_resident"), 2u);
  const auto loaded = ctl(daemon, {"load", "--priority", "low", "c"});
  ASSERT_EQ(loaded.exit_code, 0) << "a plain load evicts: " << loaded.err;
  EXPECT_EQ(daemon.stat("evictions"), 1u);
}

TEST(Prefetch, GenomectlRefusesAPriorityItDoesNotKnow) {
  const auto bad =
      run_command({binary("genomectl"), "--socket", "/tmp/x", "--priority", "urgent", "load", "a"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--priority"), std::string::npos) << bad.err;
  const auto misplaced =
      run_command({binary("genomectl"), "--socket", "/tmp/x", "--priority", "high", "list"});
  EXPECT_EQ(misplaced.exit_code, 2);
}

}  // namespace
}  // namespace genomed::testing
