#include "loader/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "config_parse.h"
#include "worker/fault.h"

namespace genomed::loader {
namespace {

using std::chrono::milliseconds;
using namespace config_test;  // config_parse.h

// ---- flags ---------------------------------------------------------------------

TEST(ConfigFlags, EveryCommonFlagSetsItsField) {
  const DaemonConfig c = parse_ok({"--socket",
                                   "/run/g.sock",
                                   "--root",
                                   "/srv/a",
                                   "--root",
                                   "/srv/b",
                                   "--budget",
                                   "512M",
                                   "--workers",
                                   "3",
                                   "--load-timeout-ms",
                                   "1234",
                                   "--admission-timeout-ms",
                                   "77",
                                   "--queue-limit",
                                   "9",
                                   "--log-level",
                                   "debug",
                                   "--worker-path",
                                   "/opt/genome-worker"});
  EXPECT_EQ(c.socket_path, "/run/g.sock");
  EXPECT_EQ(c.roots, (std::vector<std::string>{"/srv/a", "/srv/b"}));
  EXPECT_EQ(c.budget_bytes, 512ull << 20);
  EXPECT_EQ(c.workers, 3);
  EXPECT_EQ(c.coordinator.load_timeout, milliseconds(1234));
  EXPECT_EQ(c.coordinator.admission_timeout, milliseconds(77));
  EXPECT_EQ(c.queue_limit, 9u);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.worker_path, "/opt/genome-worker");
}

TEST(ConfigFlags, FlagEqualsValueFormIsAccepted) {
  REQUIRE_FAULT_INJECTION();
  const DaemonConfig c = parse_ok({"--socket=/run/x.sock", "--root=/srv/a", "--budget=2G",
                                   "--workers=5", "--job-retries=4", "--worker-fault=crash@probe"});
  EXPECT_EQ(c.socket_path, "/run/x.sock");
  EXPECT_EQ(c.roots, std::vector<std::string>{"/srv/a"});
  EXPECT_EQ(c.budget_bytes, 2ull << 30);
  EXPECT_EQ(c.workers, 5);
  EXPECT_EQ(c.coordinator.job_retries, 4);
  EXPECT_EQ(c.worker_fault, "crash@probe");
}

TEST(ConfigFlags, ValueAfterEqualsMayItselfContainEquals) {
  REQUIRE_FAULT_INJECTION();
  const DaemonConfig c = parse_ok(with_required({"--worker-fault=hang@fill:name=a"}));
  EXPECT_EQ(c.worker_fault, "hang@fill:name=a");
}

TEST(ConfigFlags, FailureHandlingFlagsSetTheirFields) {
  const DaemonConfig c = parse_ok(with_required({"--load-timeout-per-gib-ms",
                                                 "11",
                                                 "--kill-grace-ms",
                                                 "12",
                                                 "--restart-backoff-ms",
                                                 "13",
                                                 "--restart-backoff-multiplier",
                                                 "1.5",
                                                 "--restart-backoff-max-ms",
                                                 "14",
                                                 "--restart-intensity",
                                                 "15",
                                                 "--restart-period-ms",
                                                 "16",
                                                 "--quarantine-strikes",
                                                 "17",
                                                 "--quarantine-ms",
                                                 "18",
                                                 "--breaker-failures",
                                                 "19",
                                                 "--breaker-window-ms",
                                                 "20",
                                                 "--breaker-cooldown-ms",
                                                 "21",
                                                 "--breaker-cooldown-multiplier",
                                                 "3",
                                                 "--breaker-cooldown-max-ms",
                                                 "22",
                                                 "--breaker-half-open-probes",
                                                 "23",
                                                 "--ready-fd",
                                                 "24",
                                                 "--saturated-after-ms",
                                                 "25",
                                                 "--worker-memory-limit",
                                                 "512M"}));
  EXPECT_EQ(c.coordinator.timeout_per_gib, milliseconds(11));
  expect_failure_handling(
      c, {milliseconds(12), milliseconds(13), 1.5, milliseconds(14), 15, milliseconds(16), 17,
          milliseconds(18), 19, milliseconds(20), milliseconds(21), 3.0, milliseconds(22), 23});
  EXPECT_EQ(c.ready_fd, 24);
  EXPECT_EQ(c.coordinator.saturated_after, milliseconds(25));
  EXPECT_EQ(c.worker_memory_limit, 512ull << 20);
}

TEST(ConfigFlags, DefaultsApplyWhenOnlyRequiredFlagsAreGiven) {
  const DaemonConfig c = parse_ok(kRequired);
  EXPECT_EQ(c.budget_bytes, 1ull << 30);
  EXPECT_GE(c.workers, 1);
  EXPECT_EQ(c.queue_limit, 256u);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.ready_fd, -1);
  EXPECT_TRUE(c.worker_fault.empty());
  EXPECT_EQ(c.worker_memory_limit, 1ull << 30);
  EXPECT_EQ(c.coordinator.saturated_after, milliseconds(5000));
  // genome-worker next to the running binary.
  const std::string suffix = "/genome-worker";
  ASSERT_GE(c.worker_path.size(), suffix.size());
  EXPECT_EQ(c.worker_path.substr(c.worker_path.size() - suffix.size()), suffix) << c.worker_path;
}

TEST(ConfigFlags, LaterScalarFlagOverridesAnEarlierOne) {
  EXPECT_EQ(parse_ok(with_required({"--workers", "3", "--workers", "4"})).workers, 4);
}

TEST(ConfigFlags, HelpNeedsNoOtherFlags) {
  for (const char* flag : {"--help", "-h"}) {
    const auto r = parse({flag});
    ASSERT_TRUE(r.ok()) << flag << ": " << r.status().to_string();
    EXPECT_TRUE(r->help);
  }
  const auto after = parse({"--workers", "3", "--help"});
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_TRUE(after->help);
}

TEST(ConfigFlags, MissingSocketIsBadRequestNamingTheFlag) {
  expect_bad({"--root", "/srv/a"}, "--socket");
}

TEST(ConfigFlags, MissingRootIsBadRequestNamingTheFlag) {
  expect_bad({"--socket", "/run/g.sock"}, "--root");
}

TEST(ConfigFlags, UnknownFlagIsBadRequestNamingIt) {
  expect_bad(with_required({"--frobnicate", "1"}), "--frobnicate");
  expect_bad(with_required({"--frobnicate=1"}), "--frobnicate");
}

TEST(ConfigFlags, PositionalArgumentIsBadRequest) { expect_bad(with_required({"stray"}), "stray"); }

TEST(ConfigFlags, FlagWithoutValueIsBadRequestNamingIt) {
  expect_bad({"--root", "/srv/a", "--socket"}, "--socket");
}

TEST(ConfigFlags, BadBudgetIsBadRequestNamingTheFlag) {
  for (const char* budget : {"lots", "0", "12Q", "1K", "-1G", ""}) {
    SCOPED_TRACE(budget);
    expect_bad(with_required({"--budget", budget}), "--budget");
  }
}

TEST(ConfigFlags, BudgetOfOneMebibyteIsTheMinimum) {
  EXPECT_EQ(parse_ok(with_required({"--budget", "1M"})).budget_bytes, 1u << 20);
}

TEST(ConfigFlags, OutOfRangeOrNonNumericWorkersIsBadRequest) {
  for (const char* workers : {"0", "-1", "257", "two", "3x", ""}) {
    SCOPED_TRACE(workers);
    expect_bad(with_required({"--workers", workers}), "--workers");
  }
  EXPECT_EQ(parse_ok(with_required({"--workers", "256"})).workers, 256);
}

TEST(ConfigFlags, BadValuesOfOtherFlagsAreBadRequestNamingThem) {
  expect_bad(with_required({"--log-level", "loud"}), "--log-level");
  expect_bad(with_required({"--queue-limit", "0"}), "--queue-limit");
  expect_bad(with_required({"--load-timeout-ms", "0"}), "--load-timeout-ms");
  expect_bad(with_required({"--admission-timeout-ms", "soon"}), "--admission-timeout-ms");
  expect_bad(with_required({"--restart-backoff-multiplier", "0.5"}),
             "--restart-backoff-multiplier");
  for (const char* limit : {"1M", "lots", "-1G", ""}) {
    SCOPED_TRACE(limit);
    expect_bad(with_required({"--worker-memory-limit", limit}), "--worker-memory-limit");
  }
  expect_bad(with_required({"--saturated-after-ms", "-1"}), "--saturated-after-ms");
}

TEST(ConfigFlags, ColdReadsAreDirectUnlessBufferedIsAsked) {
  EXPECT_TRUE(parse_ok(with_required({})).direct_cold_reads);
  EXPECT_FALSE(parse_ok(with_required({"--cold-reads", "buffered"})).direct_cold_reads);
  EXPECT_TRUE(parse_ok(with_required({"--cold-reads", "direct"})).direct_cold_reads);
  expect_bad(with_required({"--cold-reads", "fast"}), "--cold-reads");
  JsonFile file(R"({"socket": "s", "root": ["r"], "cold_reads": "buffered"})");
  EXPECT_FALSE(parse_ok({"--config", file.path()}).direct_cold_reads);
  JsonFile number(R"({"socket": "s", "root": ["r"], "cold_reads": 1})");
  expect_bad({"--config", number.path()}, "cold_reads");
}

TEST(ConfigFlags, WorkerMemoryLimitOfZeroIsNoLimit) {
  EXPECT_EQ(parse_ok(with_required({"--worker-memory-limit", "0"})).worker_memory_limit, 0u);
  EXPECT_EQ(parse_ok(with_required({"--worker-memory-limit", "16M"})).worker_memory_limit,
            16u << 20);
}

// ---- usage text ------------------------------------------------------------------

TEST(ConfigLifecycle, IdleUnloadAndPinBudgetTakeDurationsAndSizes) {
  const DaemonConfig off = parse_ok(kRequired);
  EXPECT_EQ(off.coordinator.idle_unload, milliseconds(0)) << "off by default";
  EXPECT_EQ(off.coordinator.pin_budget, 512ull << 20) << "half the (default 1G) budget";
  const DaemonConfig c = parse_ok(with_required({"--idle-unload", "5m", "--pin-budget", "256M"}));
  EXPECT_EQ(c.coordinator.idle_unload, milliseconds(300'000));
  EXPECT_EQ(c.coordinator.pin_budget, 256ull << 20);
  EXPECT_EQ(parse_ok(with_required({"--pin-budget", "0"})).coordinator.pin_budget, 0u)
      << "0: the whole budget, asked for";
  expect_bad(with_required({"--idle-unload", "300"}), "--idle-unload");
  expect_bad(with_required({"--pin-budget", "-1"}), "--pin-budget");
}

// Pins outlive their connection: by default they may take half the budget,
// whatever the order the budget and the file come in, and the other half
// stays for leases.
TEST(ConfigLifecycle, PinBudgetDefaultsToHalfTheBudgetItEndsUpWith) {
  EXPECT_EQ(parse_ok(with_required({"--budget", "8G"})).coordinator.pin_budget, 4ull << 30);
  EXPECT_EQ(parse_ok(with_required({"--budget", "1M"})).coordinator.pin_budget, 512ull << 10);
  // Rounded down to whole pages: a budget of 3 pages pins at most one.
  EXPECT_EQ(default_pin_budget(3 * 4096), 4096u);
  JsonFile file(R"({"socket": "s", "root": ["r"], "budget": "2G"})");
  EXPECT_EQ(parse_ok({"--config", file.path()}).coordinator.pin_budget, 1ull << 30);
  EXPECT_EQ(parse_ok({"--config", file.path(), "--budget", "4G"}).coordinator.pin_budget,
            2ull << 30);
  EXPECT_EQ(parse_ok({"--config", file.path(), "--pin-budget", "3G"}).coordinator.pin_budget,
            3ull << 30);
}

// Every flag parse_command_line accepts, with a value it accepts.
const std::map<std::string, std::string>& accepted_flags() {
  static const std::map<std::string, std::string> kFlags = {
      {"--socket", "/run/g.sock"},
      {"--base-model", "/srv/base"},
      {"--max-connections", "8"},
      {"--max-connections-per-uid", "6"},
      {"--max-request-threads", "8"},
      {"--max-leases-per-connection", "16"},
      {"--max-pipelined-requests", "4"},
      {"--lease-slots", "16"},
      {"--handshake-timeout-ms", "100"},
      {"--idle-timeout-ms", "0"},
      {"--write-timeout-ms", "100"},
      {"--root", "/srv/a"},
      {"--budget", "1G"},
      {"--pin-budget", "256M"},
      {"--idle-unload", "5m"},
      {"--workers", "2"},
      {"--load-timeout-ms", "10"},
      {"--load-timeout-per-gib-ms", "10"},
      {"--admission-timeout-ms", "10"},
      {"--job-retries", "1"},
      {"--fill-parts", "2"},
      {"--kill-grace-ms", "10"},
      {"--restart-backoff-ms", "10"},
      {"--restart-backoff-multiplier", "2"},
      {"--restart-backoff-max-ms", "10"},
      {"--restart-intensity", "3"},
      {"--restart-period-ms", "10"},
      {"--quarantine-strikes", "2"},
      {"--quarantine-ms", "10"},
      {"--breaker-failures", "2"},
      {"--breaker-window-ms", "10"},
      {"--breaker-cooldown-ms", "10"},
      {"--breaker-cooldown-multiplier", "2"},
      {"--breaker-cooldown-max-ms", "10"},
      {"--breaker-half-open-probes", "1"},
      {"--queue-limit", "8"},
      {"--log-level", "warn"},
      {"--ready-fd", "3"},
      {"--worker-fault", "crash@probe"},
      {"--worker-path", "/opt/w"},
      {"--worker-memory-limit", "512M"},
      {"--cold-reads", "buffered"},
      {"--saturated-after-ms", "1000"},
      {"--socket-mode", "0660"},
      {"--socket-group", "0"},
      {"--allow-uid", "0"},
      {"--allow-gid", "0"},
      {"--publish-uid", "0"},
      {"--publish-gid", "0"},
      {"--log-format", "json"},
      {"--drain-timeout", "5s"},
      {"--metrics-listen", "9464"},
      {"--metrics-request-timeout", "5s"},
      {"--client-log-rate", "128K"},
      {"--config", ""},  // filled in with a real file
  };
  return kFlags;
}

TEST(ConfigOperations, DefaultsKeepTheOwnerOnlySocketTextLogsAndNoMetrics) {
  const DaemonConfig c = parse_ok(with_required({}));
  EXPECT_EQ(c.ops.access.socket_mode, 0600u);
  EXPECT_EQ(c.ops.access.socket_group, static_cast<gid_t>(-1));
  EXPECT_TRUE(c.ops.access.allow_uids.empty());
  EXPECT_TRUE(c.ops.access.allow_gids.empty());
  EXPECT_TRUE(c.ops.access.publish_uids.empty());  // the daemon's own user alone publishes
  EXPECT_TRUE(c.ops.access.publish_gids.empty());
  EXPECT_EQ(c.ops.log_format, LogFormat::text);
  EXPECT_EQ(c.ops.drain_timeout, milliseconds(10'000));
  EXPECT_EQ(c.ops.metrics_listen, "");
  EXPECT_EQ(c.ops.metrics_request_timeout, milliseconds(10'000));
  EXPECT_EQ(c.ops.client_log_rate, 64u * 1024);
}

TEST(ConfigOperations, FlagsSetTheirFieldsAndListsAccumulate) {
  const DaemonConfig c = parse_ok(with_required(
      {"--socket-mode", "0o660", "--socket-group", "root", "--allow-uid", "1000,root",
       "--allow-uid", "7", "--allow-gid", "5,root", "--log-format", "json", "--drain-timeout",
       "1.5m", "--metrics-listen", "0.0.0.0:9100", "--metrics-request-timeout", "250ms",
       "--publish-uid", "1000,root", "--publish-uid", "7", "--publish-gid", "5,root"}));
  EXPECT_EQ(c.ops.access.publish_uids, (std::vector<uid_t>{1000, 0, 7}));
  EXPECT_EQ(c.ops.access.publish_gids, (std::vector<gid_t>{5, 0}));
  EXPECT_EQ(c.ops.access.socket_mode, 0660u);
  EXPECT_EQ(c.ops.access.socket_group, 0u);
  EXPECT_EQ(c.ops.access.allow_uids, (std::vector<uid_t>{1000, 0, 7}));
  EXPECT_EQ(c.ops.access.allow_gids, (std::vector<gid_t>{5, 0}));
  EXPECT_EQ(c.ops.log_format, LogFormat::json);
  EXPECT_EQ(c.ops.drain_timeout, milliseconds(90'000));
  EXPECT_EQ(c.ops.metrics_listen, "0.0.0.0:9100");
  EXPECT_EQ(c.ops.metrics_request_timeout, milliseconds(250));
  EXPECT_EQ(parse_ok(with_required({"--metrics-listen", "9100"})).ops.metrics_listen,
            "127.0.0.1:9100");
  EXPECT_EQ(parse_ok(with_required({"--drain-timeout", "0"})).ops.drain_timeout, milliseconds(0));
  EXPECT_EQ(parse_ok(with_required({"--client-log-rate", "1M"})).ops.client_log_rate, 1u << 20);
}

TEST(ConfigOperations, BadValuesAreRefusedNamingTheFlag) {
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"--socket-mode", "0400"},
           {"--socket-mode", "0888"},
           {"--socket-mode", "01777"},
           {"--socket-group", "no-such-group-here"},
           {"--allow-uid", "no-such-user-here"},
           {"--allow-uid", "4294967295"},
           {"--allow-gid", ""},
           {"--publish-uid", "no-such-user-here"},
           {"--publish-gid", ""},
           {"--log-format", "xml"},
           {"--drain-timeout", "10"},
           {"--drain-timeout", "366d"},
           {"--metrics-listen", "localhost:http"},
           {"--metrics-listen", "127.0.0.1:70000"},
           {"--metrics-request-timeout", "0"},
           {"--metrics-request-timeout", "10"},
           {"--client-log-rate", "0"},
           {"--client-log-rate", "1023"},
           {"--client-log-rate", "2G"},
           {"--client-log-rate", "fast"}}) {
    expect_bad(with_required({flag, value}), flag);
  }
}

TEST(ConfigOperations, FileKeysTakeStringsAndIdsTakeNumbersToo) {
  JsonFile file(R"({"socket": "s", "root": ["r"], "socket_mode": "0660", "allow_uid": 1000,
                    "allow_gid": "0", "log_format": "json", "drain_timeout": "2s",
                    "metrics_listen": "127.0.0.1:9464", "metrics_request_timeout": "3s",
                    "client_log_rate": 131072, "publish_uid": 1000, "publish_gid": "0"})");
  const DaemonConfig c = parse_ok({"--config", file.path()});
  EXPECT_EQ(c.ops.metrics_request_timeout, milliseconds(3000));
  EXPECT_EQ(c.ops.client_log_rate, 131072u);
  EXPECT_EQ(c.ops.access.socket_mode, 0660u);
  EXPECT_EQ(c.ops.access.allow_uids, (std::vector<uid_t>{1000}));
  EXPECT_EQ(c.ops.access.allow_gids, (std::vector<gid_t>{0}));
  EXPECT_EQ(c.ops.access.publish_uids, (std::vector<uid_t>{1000}));
  EXPECT_EQ(c.ops.access.publish_gids, (std::vector<gid_t>{0}));
  EXPECT_EQ(c.ops.log_format, LogFormat::json);
  EXPECT_EQ(c.ops.drain_timeout, milliseconds(2000));
  JsonFile numeric_mode(R"({"socket": "s", "root": ["r"], "socket_mode": 432})");
  expect_bad({"--config", numeric_mode.path()}, "socket_mode");
}

TEST(ConfigUsage, MentionsEveryAcceptedFlag) {
  const std::string usage = usage_text();
  for (const auto& [flag, value] : accepted_flags()) {
    const std::regex mention(flag + "(?![a-z-])");  // "--quarantine-ms", not "--quarantine-ms-x"
    EXPECT_TRUE(std::regex_search(usage, mention)) << "usage does not mention " << flag;
  }
  EXPECT_NE(usage.find("--help"), std::string::npos);
  EXPECT_NE(usage.find("-h,"), std::string::npos);
}

TEST(ConfigUsage, EveryListedFlagIsAcceptedByTheParser) {
  JsonFile file(R"({"socket": "s", "root": ["r"]})");
  for (const auto& [flag, value] : accepted_flags()) {
    const auto r = parse(with_required({flag, flag == "--config" ? file.path() : value}));
    // --worker-fault is listed in every build but accepted only in one with
    // fault injection (WorkerFaultIsAcceptedExactlyWhenBuiltIn).
    if (flag == "--worker-fault" && !jobs::fault_injection_built()) continue;
    EXPECT_TRUE(r.ok()) << flag << ": " << r.status().to_string();
  }
}

TEST(ConfigUsage, EveryFlagTheUsageMentionsIsAcceptedByTheParser) {
  const std::string usage = usage_text();
  const std::regex flag_re("--[a-z][a-z-]*[a-z]");
  std::set<std::string> mentioned;
  for (auto it = std::sregex_iterator(usage.begin(), usage.end(), flag_re);
       it != std::sregex_iterator(); ++it) {
    mentioned.insert(it->str());
  }
  EXPECT_GE(mentioned.size(), accepted_flags().size());
  for (const auto& flag : mentioned) {
    if (flag == "--help") continue;
    EXPECT_TRUE(accepted_flags().count(flag))
        << "usage mentions " << flag << ", which this test does not know";
    const auto r = parse(with_required({flag + "=x"}));
    if (!r.ok()) {
      EXPECT_EQ(r.status().message().find("unknown option"), std::string::npos)
          << "usage mentions " << flag << " but the parser refuses it: " << r.status().message();
    }
  }
}

// A release build (GENOMED_FAULT_INJECTION=OFF) refuses --worker-fault and
// its config key, saying how to build with it; --help says which build this is.
TEST(ConfigUsage, WorkerFaultIsAcceptedExactlyWhenBuiltIn) {
  const auto flag = parse(with_required({"--worker-fault", "crash@probe"}));
  JsonFile file(R"({"socket": "s", "root": ["r"], "worker_fault": "crash@probe"})");
  const auto key = parse({"--config", file.path()});
  const std::string usage = usage_text();
  if (jobs::fault_injection_built()) {
    EXPECT_TRUE(flag.ok()) << flag.status().to_string();
    EXPECT_TRUE(key.ok()) << key.status().to_string();
    EXPECT_NE(usage.find("(this build has it)"), std::string::npos) << usage;
  } else {
    for (const auto* r : {&flag, &key}) {
      ASSERT_FALSE(r->ok());
      EXPECT_EQ(r->code(), Errc::bad_request);
      EXPECT_NE(r->status().message().find("-DGENOMED_FAULT_INJECTION=ON"), std::string::npos)
          << r->status().message();
    }
    EXPECT_NE(usage.find("(this build does not)"), std::string::npos) << usage;
  }
  EXPECT_NE(usage.find("-DGENOMED_FAULT_INJECTION=ON"), std::string::npos) << usage;
}

}  // namespace
}  // namespace genomed::loader
