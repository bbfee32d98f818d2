// Helpers of the command-line tests (config_test.cc and the tests of one
// group of flags beside it): parse a command line, expect it accepted or
// refused naming a flag, and a JSON file for --config.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "loader/config.h"
#include "worker/fault.h"

// The tests that set --worker-fault need a build with fault injection
// (GENOMED_FAULT_INJECTION=ON, as scripts/test.sh configures it); without it
// they fail, as the integration fault tests do, rather than pass unseen.
#define REQUIRE_FAULT_INJECTION()                                                                \
  if (!jobs::fault_injection_built())                                                            \
  GTEST_FAIL() << "needs a build with -DGENOMED_FAULT_INJECTION=ON (scripts/test.sh configures " \
                  "it)"

namespace genomed::loader::config_test {

// parse_command_line over `args` (without the program name).
inline Result<CommandLine> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "genomed");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return parse_command_line(static_cast<int>(args.size()), argv.data());
}

// Accepted, not --help: the configuration.
inline DaemonConfig parse_ok(const std::vector<std::string>& args) {
  auto r = parse(args);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_FALSE(r.ok() && r->help);
  return r.ok() ? std::move(r).value().config : DaemonConfig{};
}

// Refused as bad_request, the message naming `mention`.
inline void expect_bad(const std::vector<std::string>& args, const std::string& mention) {
  const auto r = parse(args);
  ASSERT_FALSE(r.ok()) << "accepted: " << ::testing::PrintToString(args);
  EXPECT_EQ(r.code(), Errc::bad_request) << r.status().to_string();
  EXPECT_NE(r.status().message().find(mention), std::string::npos)
      << "'" << r.status().message() << "' does not mention " << mention;
}

inline const std::vector<std::string> kRequired{"--socket", "/run/g.sock", "--root", "/srv/a"};

inline std::vector<std::string> with_required(std::vector<std::string> extra) {
  std::vector<std::string> args = kRequired;
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// A JSON file in a temporary directory, removed at the end of the test.
class JsonFile {
 public:
  explicit JsonFile(const std::string& text) {
    char templ[] = "/tmp/genomed-config-test-XXXXXX";
    const int fd = ::mkstemp(templ);
    EXPECT_GE(fd, 0);
    if (fd >= 0) ::close(fd);
    path_ = templ;
    std::ofstream(path_) << text;
  }
  ~JsonFile() { std::filesystem::remove(path_); }
  JsonFile(const JsonFile&) = delete;
  JsonFile& operator=(const JsonFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The failure-handling settings (restarts, quarantine, breaker) a test set,
// as both the flags and the --config file tests expect them.
struct FailureHandling {
  std::chrono::milliseconds kill_grace, backoff_first;
  double backoff_multiplier;
  std::chrono::milliseconds backoff_max;
  int max_restarts;
  std::chrono::milliseconds period;
  int strikes;
  std::chrono::milliseconds quarantine;
  int failures;
  std::chrono::milliseconds window, cooldown;
  double cooldown_multiplier;
  std::chrono::milliseconds max_cooldown;
  int half_open_probes;
};

inline void expect_failure_handling(const DaemonConfig& c, const FailureHandling& want) {
  EXPECT_EQ(c.kill_grace, want.kill_grace);
  EXPECT_EQ(c.restart.backoff_first, want.backoff_first);
  EXPECT_DOUBLE_EQ(c.restart.backoff_multiplier, want.backoff_multiplier);
  EXPECT_EQ(c.restart.backoff_max, want.backoff_max);
  EXPECT_EQ(c.restart.max_restarts, want.max_restarts);
  EXPECT_EQ(c.restart.period, want.period);
  EXPECT_EQ(c.coordinator.quarantine.strikes, want.strikes);
  EXPECT_EQ(c.coordinator.quarantine.duration, want.quarantine);
  EXPECT_EQ(c.coordinator.breaker.failure_threshold, want.failures);
  EXPECT_EQ(c.coordinator.breaker.window, want.window);
  EXPECT_EQ(c.coordinator.breaker.cooldown, want.cooldown);
  EXPECT_DOUBLE_EQ(c.coordinator.breaker.cooldown_multiplier, want.cooldown_multiplier);
  EXPECT_EQ(c.coordinator.breaker.max_cooldown, want.max_cooldown);
  EXPECT_EQ(c.coordinator.breaker.half_open_probes, want.half_open_probes);
}

}  // namespace genomed::loader::config_test
