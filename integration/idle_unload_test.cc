// Idle unload against the real daemon on its real clock: --idle-unload, a
// request's keep_alive (genomectl --keep-alive), leases that keep adapters,
// and what LIST and stats show. The unload is awaited with a generous bound;
// nothing asserts how fast it came.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "integration/daemon_fixture.h"

namespace genomed::testing {
namespace {

CommandResult ctl(const Daemon& daemon, std::vector<std::string> args) {
  args.insert(args.begin(), {binary("genomectl"), "--socket", daemon.socket_path()});
  return run_command(args);
}

bool listed(Client& client, const std::string& name) {
  auto list = client.list();
  EXPECT_TRUE(list.ok()) << list.status().to_string();
  if (!list.ok()) return false;
  return std::any_of(list->begin(), list->end(), [&](const auto& a) { return a.name == name; });
}

TEST(IdleUnload, UnusedAdaptersGoLeasedAndKeptOnesStay) {
  Daemon daemon({.extra_args = {"--idle-unload", "300ms"}});
  for (const char* name : {"never", "idle", "leased"})
    daemon.add_adapter(name, megabyte_adapter(name[0]));
  const auto kept = ctl(daemon, {"load", "--keep-alive", "0", "never"});
  ASSERT_EQ(kept.exit_code, 0) << kept.err;
  Client client = daemon.connect();
  auto lease = client.acquire("leased");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  ASSERT_TRUE(client.load("idle").ok());

  ASSERT_TRUE(eventually([&] { return !listed(client, "idle"); }, 30000)) << daemon.log();
  EXPECT_TRUE(listed(client, "never"));
  EXPECT_TRUE(listed(client, "leased"));
  EXPECT_EQ(daemon.stat("idle_unloads"), 1u);
  EXPECT_NE(daemon.log().find("unloaded 'idle': unused for"), std::string::npos);

  const auto json = ctl(daemon, {"list", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  for (const auto& a : nlohmann::json::parse(json.out)) {
    EXPECT_TRUE(a["expires_in_ms"].is_null()) << a.dump();  // keep-alive 0, and leased
    EXPECT_TRUE(a.contains("idle_ms")) << a.dump();
  }
  const auto table = ctl(daemon, {"list"});
  EXPECT_NE(table.out.find("expires in"), std::string::npos) << table.out;

  lease = Status(Errc::cancelled, "released");  // its idle time starts now
  ASSERT_TRUE(eventually([&] { return !listed(client, "leased"); }, 30000)) << daemon.log();
  EXPECT_TRUE(listed(client, "never"));
  EXPECT_EQ(daemon.stat("idle_unloads"), 2u);
}

TEST(IdleUnload, ANegativeKeepAliveIsRefusedNotReadAsNever) {
  // The client clamped a negative keep_alive to 0, which the daemon reads
  // as "never unload": a caller's bad arithmetic kept adapters forever.
  Daemon daemon;
  daemon.add_adapter("a", megabyte_adapter(1));
  Client client = daemon.connect();
  LoadOptions options;
  options.keep_alive = std::chrono::milliseconds(-1);
  EXPECT_EQ(client.load("a", options).code(), Errc::bad_request);
  EXPECT_EQ(client.acquire({"a"}, options).code(), Errc::bad_request);
  EXPECT_EQ(client.pin("a", options).code(), Errc::bad_request);
  EXPECT_FALSE(listed(client, "a")) << "nothing was sent";
}

TEST(IdleUnload, TheFlagsTakeDurationsAndSayWhatIsWrong) {
  const auto help = run_command({binary("genomed"), "--help"});
  EXPECT_NE(help.out.find("--idle-unload DURATION"), std::string::npos);
  const auto bad = run_command(
      {binary("genomed"), "--socket", "/tmp/x", "--root", "/tmp", "--idle-unload", "30"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--idle-unload"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("unit is required"), std::string::npos) << bad.err;
  const auto ctl_bad =
      run_command({binary("genomectl"), "--socket", "/tmp/x", "--keep-alive", "5x", "load", "a"});
  EXPECT_EQ(ctl_bad.exit_code, 2);
  EXPECT_NE(ctl_bad.err.find("--keep-alive"), std::string::npos) << ctl_bad.err;
}

}  // namespace
}  // namespace genomed::testing
