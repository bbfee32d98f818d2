// genome-stress must tell a broken daemon from a working one: a changed byte
// in the arena, a lease it does not hold, and a load that never answers
// each make it exit 1 naming the failure; a short chaos run against a sound
// daemon exits 0 with a JSON report that counts what it did, and so does a
// run that rewrites adapter files in place under the clients.
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
                           "kill-clients", "bad-files", "replace-files", "rewrite-files",
                           "stop-daemon",
                           "--bad-root", "--verify",
                           "--json", "--seed"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  const auto bad = run_command({binary("genome-stress"), "--spawn", "--mix", "acquire=x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--mix"), std::string::npos) << bad.err;
  const auto user_root = run_command({binary("genome-stress"), "--socket", "/tmp/x.sock", "--root",
                                      "/tmp", "--chaos", "replace-files=1"});
  EXPECT_EQ(user_root.exit_code, 2) << "a user's root is never rewritten";
  const auto in_place = run_command({binary("genome-stress"), "--socket", "/tmp/x.sock", "--root",
                                     "/tmp", "--chaos", "rewrite-files=1"});
  EXPECT_EQ(in_place.exit_code, 2) << "nor written in place";
  const auto user_daemon = run_command({binary("genome-stress"), "--socket", "/tmp/x.sock",
                                        "--root", "/tmp", "--chaos", "stop-daemon=1"});
  EXPECT_EQ(user_daemon.exit_code, 2) << "a daemon the harness did not start is never stopped";
  EXPECT_NE(user_daemon.err.find("stop-daemon"), std::string::npos) << user_daemon.err;
  const auto no_time = run_command({binary("genome-stress"), "--spawn", "--duration", "0"});
  EXPECT_EQ(no_time.exit_code, 2) << "a run of no time would pass having tested nothing";
  EXPECT_NE(no_time.err.find("--duration: at least 1ms"), std::string::npos) << no_time.err;
}

// `--chaos` alone means every kind that applies: against a daemon it did not
// start, replace-files and rewrite-files (they would write the user's root),
// stop-daemon (the daemon is not the harness's) and bad-files (no --bad-root)
// are skipped, and the report says so and why.
TEST(StressHarness, ChaosAloneAgainstARunningDaemonRunsTheKindsThatApply) {
  Daemon daemon;
  daemon.add_adapter("a", {.rank = 8, .layers = 2, .hidden = 64, .seed = 3});
  daemon.add_adapter("b", {.rank = 8, .layers = 2, .hidden = 64, .seed = 4});
  const ScratchDir dir("genome-stress-test");
  const std::string json = dir / "report.json";
  const auto run = run_command(
      stress_against(daemon, {"--ops", "40", "--clients", "2", "--chaos", "--json", json}));
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("chaos kill-workers=0.2,stop-workers=0.1,kill-clients=0.5\n"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("chaos skipped: bad-files: no --bad-root"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("chaos skipped: replace-files: it rewrites adapter files, and without "
                         "--spawn the root is not the harness's"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("chaos skipped: rewrite-files: it rewrites adapter files, and without "
                         "--spawn the root is not the harness's"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("chaos skipped: stop-daemon: it stops the daemon itself, and without "
                         "--spawn the daemon is not the harness's"),
            std::string::npos)
      << run.out;
  const auto report = nlohmann::json::parse(read_file(json), nullptr, false);
  ASSERT_TRUE(report.is_object()) << read_file(json);
  EXPECT_EQ(report["chaos"], "kill-workers=0.2,stop-workers=0.1,kill-clients=0.5");
  EXPECT_NE(run.out.find("chaos skipped: reload-files: it rewrites adapter files"),
            std::string::npos)
      << run.out;
  EXPECT_EQ(report["chaos_skipped"].size(), 5u) << report.dump(2);
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

TEST(StressHarness, InPlaceRewritesUnderTheClientsPassAgainstASoundDaemon) {
  // One mutable adapter, the most popular (Zipf 2), rewritten in place (or
  // truncated and written again) 20 times a second: every lease of it must
  // hold one whole version, every failed load be `file_changed`. Without
  // genomed's read leases this run fails: loads that open the file cut
  // short are refused as a bad file (st_file_too_short), or serve a mix.
  const ScratchDir dir("genome-stress-test");
  const std::string json = dir / "report.json";
  const auto run = run_command({binary("genome-stress"), "--spawn", "--duration", "8s",
                                "--clients", "4", "--chaos", "rewrite-files=20",
                                "--mutable-adapters", "1", "--zipf", "2", "--seed", "3", "--json",
                                json});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  const auto report = nlohmann::json::parse(read_file(json), nullptr, false);
  ASSERT_TRUE(report.is_object()) << read_file(json);
  EXPECT_EQ(report["verdict"], "PASS");
  EXPECT_GT(report["chaos_events"]["files rewritten in place"].get<std::uint64_t>(), 0u)
      << report.dump(2);
  EXPECT_EQ(report["failures"]["wrong_bytes"].get<std::uint64_t>(), 0u);
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
