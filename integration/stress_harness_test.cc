// genome-stress must tell a broken daemon from a working one: a changed byte
// in the arena, a lease it does not hold, and a load that never answers
// each make it exit 1 naming the failure; a short chaos run against a sound
// daemon exits 0 with a JSON report that counts what it did.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

std::vector<std::string> stress_against(const Daemon& daemon, std::vector<std::string> extra) {
  std::vector<std::string> argv = {binary("genome-stress"), "--socket", daemon.socket_path(),
                                   "--root", daemon.root(), "--seed", "7"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

TEST(StressHarness, HelpIsTrueAndAUsageErrorExits2) {
  const auto help = run_command({binary("genome-stress"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag : {"--spawn", "--clients", "--duration", "--ops", "--mix", "--zipf",
                           "--hold-ms", "--adapters", "--chaos", "kill-workers", "stop-workers",
                           "kill-clients", "bad-files", "replace-files", "stop-daemon",
                           "--bad-root", "--verify",
                           "--json", "--seed"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  const auto bad = run_command({binary("genome-stress"), "--spawn", "--mix", "acquire=x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--mix"), std::string::npos) << bad.err;
  const auto user_root = run_command({binary("genome-stress"), "--socket", "/tmp/x.sock", "--root",
                                      "/tmp", "--chaos", "replace-files=1"});
  EXPECT_EQ(user_root.exit_code, 2) << "a user's root is never rewritten";
  const auto user_daemon = run_command({binary("genome-stress"), "--socket", "/tmp/x.sock",
                                        "--root", "/tmp", "--chaos", "stop-daemon=1"});
  EXPECT_EQ(user_daemon.exit_code, 2) << "a daemon the harness did not start is never stopped";
  EXPECT_NE(user_daemon.err.find("stop-daemon"), std::string::npos) << user_daemon.err;
}

TEST(StressHarness, AChangedByteInTheArenaIsAWrongByte) {
  Daemon daemon;
  daemon.add_adapter("a", {.rank = 8, .layers = 2, .hidden = 64, .seed = 3});
  Client client = daemon.connect();
  auto lease = client.acquire("a");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  const TensorView& victim = lease->tensors()[1];
  const std::byte* base = arena_mapping();
  ASSERT_NE(base, nullptr);
  const off_t at = victim.data.data() + 3 - base;
  const std::string victim_name(victim.name);
  lease->release();  // "a" stays resident: the budget has room for it
  const int arena = open_arena_writable(daemon.pid());
  ASSERT_GE(arena, 0);
  std::byte b{};
  ASSERT_EQ(::pread(arena, &b, 1, at), 1);
  b ^= std::byte{0x10};
  ASSERT_EQ(::pwrite(arena, &b, 1, at), 1);
  ::close(arena);

  const auto run = run_command(
      stress_against(daemon, {"--ops", "20", "--clients", "2", "--mix", "acquire=100"}));
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("wrong_bytes="), std::string::npos) << run.out;
  EXPECT_NE(run.out.find(victim_name), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("verdict: FAIL"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("repeat: genome-stress --socket"), std::string::npos) << run.out;
}

TEST(StressHarness, ALeaseTheHarnessDoesNotHoldBreaksTheLeaseInvariant) {
  Daemon daemon;
  daemon.add_adapter("a", {.rank = 8, .layers = 2, .hidden = 64, .seed = 3});
  Client client = daemon.connect();
  auto held = client.acquire("a");  // another client the harness is told nothing of
  ASSERT_TRUE(held.ok()) << held.status().to_string();
  const auto run = run_command(
      stress_against(daemon, {"--ops", "20", "--clients", "2", "--mix", "list=50,stats=50",
                              "--quiesce-timeout", "2s"}));
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("[FAIL] leases active = leases the harness holds"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("invariant="), std::string::npos) << run.out;
  // Told that others use the daemon, it does not count their leases.
  const auto shared = run_command(
      stress_against(daemon, {"--ops", "20", "--clients", "2", "--mix", "list=50,stats=50",
                              "--shared"}));
  EXPECT_EQ(shared.exit_code, 0) << shared.out << shared.err;
}

// Needs the test-only fault injection (-DGENOMED_FAULT_INJECTION=ON), as the
// other fault tests do.
TEST(StressHarness, ALoadThatNeverAnswersIsAHang) {
  Daemon daemon({.load_timeout_ms = 600000, .extra_args = {"--worker-fault", "hang@fill:stuck"}});
  daemon.add_adapter("stuck", {.rank = 8, .layers = 2, .hidden = 64, .seed = 3});
  const auto run = run_command(stress_against(
      daemon, {"--ops", "1", "--clients", "1", "--mix", "acquire=100", "--op-deadline", "2s",
               "--quiesce-timeout", "1s"}));
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("failures: hang="), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("no reply from genomed within 2 s"), std::string::npos) << run.out;
}

TEST(StressHarness, AShortChaosRunAgainstASoundDaemonPasses) {
  const ScratchDir dir("genome-stress-test");
  const std::string json = dir / "report.json";
  const auto run = run_command({binary("genome-stress"), "--spawn", "--duration", "8s",
                                "--clients", "4", "--chaos", "--seed", "11", "--json", json,
                                "--", "--budget", "8M"});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  const auto report = nlohmann::json::parse(read_file(json), nullptr, false);
  ASSERT_TRUE(report.is_object()) << read_file(json);
  EXPECT_EQ(report["verdict"], "PASS");
  EXPECT_GT(report["verified"]["leases"].get<std::uint64_t>(), 0u);
  std::uint64_t events = 0;
  for (const auto& [kind, n] : report["chaos_events"].items()) events += n.get<std::uint64_t>();
  EXPECT_GT(events, 0u) << report.dump(2);
  EXPECT_NE(run.out.find("--budget 8M"), std::string::npos) << "genomed's flags reach it";
}

// Pauses of the daemon itself (SIGSTOP for 0.2-3 s) with a 2 s load
// deadline: with stop-daemon alone no error is allowed, `timeout` included,
// so the run passes only if no pause failed a load.
TEST(StressHarness, StoppingTheDaemonCausesNoError) {
  const ScratchDir dir("genome-stress-test");
  const std::string json = dir / "report.json";
  const auto run = run_command({binary("genome-stress"), "--spawn", "--duration", "8s",
                                "--clients", "4", "--chaos", "stop-daemon=1", "--seed", "5",
                                "--json", json, "--", "--budget", "8M", "--load-timeout-ms",
                                "2000"});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  const auto report = nlohmann::json::parse(read_file(json), nullptr, false);
  ASSERT_TRUE(report.is_object()) << read_file(json);
  EXPECT_EQ(report["verdict"], "PASS") << report.dump(2);
  EXPECT_GT(report["chaos_events"]["daemon stopped"].get<std::uint64_t>(), 0u) << report.dump(2);
}

}  // namespace
}  // namespace genomed::testing
