// The --config FILE.json of genomed's command line (loader/config.h): every
// key sets its field, flags override the file wherever they stand, values
// keep their JSON type and every bad file is refused naming the key or the
// file. The flags themselves: config_test.cc.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config_parse.h"
#include "loader/config.h"

namespace genomed::loader {
namespace {

using std::chrono::milliseconds;
using namespace config_test;  // config_parse.h

constexpr const char* kFullConfig = R"({
  "socket": "/run/file.sock",
  "root": ["/srv/f1", "/srv/f2"],
  "budget": "256M",
  "workers": 4,
  "load_timeout_ms": 101,
  "load_timeout_per_gib_ms": 102,
  "admission_timeout_ms": 103,
  "job_retries": 5,
  "kill_grace_ms": 104,
  "restart_backoff_ms": 105,
  "restart_backoff_multiplier": 2.5,
  "restart_backoff_max_ms": 106,
  "restart_intensity": 6,
  "restart_period_ms": 107,
  "quarantine_strikes": 7,
  "quarantine_ms": 108,
  "breaker_failures": 8,
  "breaker_window_ms": 109,
  "breaker_cooldown_ms": 110,
  "breaker_cooldown_multiplier": 4,
  "breaker_cooldown_max_ms": 111,
  "breaker_half_open_probes": 9,
  "queue_limit": 10,
  "log_level": "warn",
  "ready_fd": 11,
  "worker_fault": "crash@fill",
  "worker_path": "/opt/file-worker",
  "worker_memory_limit": "2G",
  "saturated_after_ms": 112
})";

TEST(ConfigFile, EveryKeySetsItsField) {
  REQUIRE_FAULT_INJECTION();
  JsonFile file(kFullConfig);
  const DaemonConfig c = parse_ok({"--config", file.path()});
  EXPECT_EQ(c.socket_path, "/run/file.sock");
  EXPECT_EQ(c.roots, (std::vector<std::string>{"/srv/f1", "/srv/f2"}));
  EXPECT_EQ(c.budget_bytes, 256ull << 20);
  EXPECT_EQ(c.workers, 4);
  EXPECT_EQ(c.coordinator.load_timeout, milliseconds(101));
  EXPECT_EQ(c.coordinator.timeout_per_gib, milliseconds(102));
  EXPECT_EQ(c.coordinator.admission_timeout, milliseconds(103));
  EXPECT_EQ(c.coordinator.job_retries, 5);
  expect_failure_handling(
      c, {milliseconds(104), milliseconds(105), 2.5, milliseconds(106), 6, milliseconds(107), 7,
          milliseconds(108), 8, milliseconds(109), milliseconds(110), 4.0, milliseconds(111), 9});
  EXPECT_EQ(c.queue_limit, 10u);
  EXPECT_EQ(c.log_level, "warn");
  EXPECT_EQ(c.ready_fd, 11);
  EXPECT_EQ(c.worker_fault, "crash@fill");
  EXPECT_EQ(c.worker_path, "/opt/file-worker");
  EXPECT_EQ(c.worker_memory_limit, 2ull << 30);
  EXPECT_EQ(c.coordinator.saturated_after, milliseconds(112));
}

TEST(ConfigFile, IntegerBudgetIsBytes) {
  JsonFile file(R"({"socket": "s", "root": ["r"], "budget": 4194304})");
  EXPECT_EQ(parse_ok({"--config", file.path()}).budget_bytes, 4u << 20);
}

TEST(ConfigFile, RootsIsAnAliasOfRoot) {
  JsonFile file(R"({"socket": "s", "roots": ["/r1", "/r2"]})");
  EXPECT_EQ(parse_ok({"--config", file.path()}).roots, (std::vector<std::string>{"/r1", "/r2"}));
}

TEST(ConfigFile, FlagsOverrideTheFileWhetherGivenBeforeOrAfterIt) {
  JsonFile file(kFullConfig);
  const DaemonConfig after =
      parse_ok({"--config", file.path(), "--workers", "2", "--log-level", "error"});
  EXPECT_EQ(after.workers, 2);
  EXPECT_EQ(after.log_level, "error");
  EXPECT_EQ(after.queue_limit, 10u);  // untouched keys keep the file's value
  const DaemonConfig before =
      parse_ok({"--workers", "2", "--socket", "/run/flag.sock", "--config", file.path()});
  EXPECT_EQ(before.workers, 2);
  EXPECT_EQ(before.socket_path, "/run/flag.sock");
  EXPECT_EQ(before.budget_bytes, 256ull << 20);
}

TEST(ConfigFile, RootsFromFlagsReplaceTheFilesRoots) {
  JsonFile file(kFullConfig);
  const DaemonConfig c =
      parse_ok({"--config", file.path(), "--root", "/flag/r1", "--root", "/flag/r2"});
  EXPECT_EQ(c.roots, (std::vector<std::string>{"/flag/r1", "/flag/r2"}));
  const DaemonConfig first = parse_ok({"--root", "/flag/r", "--config", file.path()});
  EXPECT_EQ(first.roots, std::vector<std::string>{"/flag/r"});
}

TEST(ConfigFile, FileRootsAreKeptWithoutRootFlags) {
  JsonFile file(kFullConfig);
  EXPECT_EQ(parse_ok({"--config", file.path()}).roots,
            (std::vector<std::string>{"/srv/f1", "/srv/f2"}));
}

// A value (or key) the file gives is shown in an error as a client's value
// is: at most 200 bytes of it, escaped, marked with its full length, never
// the whole megabyte.
TEST(ConfigFile, AHugeValueIsCutInTheError) {
  const std::string huge(1 << 20, 'x');
  const std::string cut = "... (1048576 bytes, 200 shown)";
  for (const char* key : {"budget", "pin_budget", "idle_unload", "log_level", "log_format",
                          "metrics_listen", "socket_mode", "socket_group", "workers"}) {
    const JsonFile file(std::string(R"({"socket": "s", "root": ["r"], ")") + key + R"(": ")" +
                        huge + R"("})");
    const auto r = parse({"--config", file.path()});
    ASSERT_FALSE(r.ok()) << key;
    EXPECT_LT(r.status().message().size(), 1000u) << key << ": " << r.status().message().size();
    EXPECT_NE(r.status().message().find(key), std::string::npos) << r.status().message();
    if (std::string(key) != "workers") {  // a string where an integer belongs: its type is named
      EXPECT_NE(r.status().message().find(cut), std::string::npos) << r.status().message();
    }
  }
  const JsonFile unknown_key(R"({"socket": "s", "root": ["r"], ")" + huge + R"(": 1})");
  const auto r = parse({"--config", unknown_key.path()});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unknown key 'xxx"), std::string::npos);
  EXPECT_NE(r.status().message().find(cut), std::string::npos);
  EXPECT_LT(r.status().message().size(), 1000u);
  // On the command line too, and escaped: no newline reaches the terminal.
  const auto flag = parse(with_required({"--budget", "12\nQ" + huge}));
  ASSERT_FALSE(flag.ok());
  EXPECT_LT(flag.status().message().size(), 1000u);
  EXPECT_EQ(flag.status().message().find('\n'), std::string::npos) << flag.status().message();
}

TEST(ConfigFile, UnknownKeyIsBadRequestNamingIt) {
  JsonFile file(R"({"socket": "s", "root": ["r"], "turbo_mode": true})");
  expect_bad({"--config", file.path()}, "turbo_mode");
}

TEST(ConfigFile, ValuesOfTheWrongJsonTypeAreRefusedNotCoerced) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("socket": 5)", "'socket' must be a string, found number"},
      {R"("workers": "4")", "'workers' must be an integer, found string"},
      {R"("workers": 2.5)", "'workers' must be an integer, found number"},
      {R"("load_timeout_ms": true)", "'load_timeout_ms' must be an integer, found boolean"},
      {R"("restart_backoff_multiplier": "2")", "'restart_backoff_multiplier' must be a number"},
      {R"("budget": [1])", "'budget' must be a size string"},
      {R"("log_level": null)", "'log_level' must be a string, found null"},
  };
  for (const auto& [entry, needle] : cases) {
    SCOPED_TRACE(entry);
    JsonFile file(R"({"socket": "s", "root": ["r"], )" + entry + "}");
    if (entry.starts_with(R"("socket")")) {
      JsonFile only(R"({"root": ["r"], )" + entry + "}");
      expect_bad({"--config", only.path()}, needle);
      continue;
    }
    expect_bad({"--config", file.path()}, needle);
  }
}

TEST(ConfigFile, ARepeatedKeyIsRefusedNamingIt) {
  JsonFile file(R"({"socket": "s", "root": ["r"], "workers": 2, "workers": 3})");
  expect_bad({"--config", file.path()}, "key 'workers' is given twice");
  JsonFile both(R"({"socket": "s", "root": ["r"], "roots": ["q"]})");
  expect_bad({"--config", both.path()}, "either 'root' or 'roots'");
}

TEST(ConfigFile, NonObjectJsonIsBadRequest) {
  for (const char* text : {"[1, 2]", "\"socket\"", "42", "{\"socket\": ", "not json", ""}) {
    SCOPED_TRACE(text);
    JsonFile file(text);
    expect_bad(with_required({"--config", file.path()}), file.path());
  }
}

TEST(ConfigFile, MissingFileIsBadRequestNamingIt) {
  expect_bad(with_required({"--config", "/nonexistent/genomed.json"}), "/nonexistent/genomed.json");
}

TEST(ConfigFile, MistypedValuesAreBadRequestNamingTheKey) {
  {
    JsonFile file(R"({"socket": "s", "root": "/not/a/list"})");
    expect_bad({"--config", file.path()}, "root");
  }
  {
    JsonFile file(R"({"socket": "s", "root": ["r"], "workers": true})");
    expect_bad({"--config", file.path()}, "workers");
  }
  {
    JsonFile file(R"({"socket": "s", "root": ["r"], "workers": 0})");
    expect_bad({"--config", file.path()}, "workers");
  }
  {
    JsonFile file(R"({"socket": "s", "root": [1]})");
    expect_bad({"--config", file.path()}, "root");
  }
}

}  // namespace
}  // namespace genomed::loader
