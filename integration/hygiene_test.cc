// Tests leave nothing behind in the temporary directory: every helper that
// makes a scratch directory (the Daemon fixture, marker directories, fake
// daemons' sockets, the coordinator fixture) makes it under $TMPDIR and
// removes it when the test ends. Representative tests run here as child
// processes with TMPDIR set to a directory of this test's own, which must
// be empty afterwards -- a check that cannot race with the other tests ctest
// runs at the same time, which share /tmp.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "integration/daemon_fixture.h"

namespace genomed::testing {
namespace {

namespace fs = std::filesystem;

// What `binary --gtest_filter=filter` left under a fresh TMPDIR (after
// checking that the tests passed: a failing one proves nothing here).
std::vector<std::string> left_behind_by(const std::string& binary, const std::string& filter) {
  const ScratchDir parent("genomed-hygiene");
  const auto run = run_command(
      {"/usr/bin/env", "TMPDIR=" + parent.path(), binary, "--gtest_filter=" + filter});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("[  PASSED  ]"), std::string::npos) << run.out << run.err;
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(parent.path())) left.push_back(e.path().string());
  return left;
}

TEST(Hygiene, IntegrationHelpersRemoveTheirScratchDirectories) {
  const std::string filter =
      "EndToEnd.ViewsAreReadOnly"                                           // Daemon fixture
      ":WorkerFaults.KillNineMidFillCompletesOnAnotherWorkerWithTheFileBytes"  // marker dir
      ":Lifecycle.MissingWorkerExecutableFailsStartUp"                      // a bare root
      ":ClientDeadline.ConnectToASocketWhoseOwnerNeverAnswersHelloTimesOut";  // FakeDaemon
  const auto left = left_behind_by(fs::read_symlink("/proc/self/exe").string(), filter);
  EXPECT_TRUE(left.empty()) << "left behind: " << ::testing::PrintToString(left);
}

TEST(Hygiene, CoordinatorFixtureRemovesItsRoot) {
  const auto left = left_behind_by(GENOMED_LOADER_TESTS, "PinTest.*:PrefetchTest.*");
  EXPECT_TRUE(left.empty()) << "left behind: " << ::testing::PrintToString(left);
}

}  // namespace
}  // namespace genomed::testing
