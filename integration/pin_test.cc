// PIN and UNPIN against the real daemon, through genomectl and the C++
// client: a pinned adapter survives budget pressure and the end of the
// connection that pinned it, pins stay within --pin-budget, and UNLOAD
// refuses a pinned adapter until it is unpinned; by default pins may hold
// only half the budget.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "integration/daemon_fixture.h"

namespace genomed::testing {
namespace {

CommandResult ctl(const Daemon& daemon, std::vector<std::string> args) {
  args.insert(args.begin(), {binary("genomectl"), "--socket", daemon.socket_path()});
  return run_command(args);
}

std::optional<AdapterInfo> find(const std::vector<AdapterInfo>& list, const std::string& name) {
  for (const auto& a : list) {
    if (a.name == name) return a;
  }
  return std::nullopt;
}

TEST(Pin, APinnedAdapterOutlivesPressureAndItsClientAndRefusesUnload) {
  // About 1 MiB each: the budget holds four, the pin budget one.
  Daemon daemon({.budget_bytes = 4ull << 20, .extra_args = {"--pin-budget", "1536K"}});
  daemon.add_adapter("p", megabyte_adapter(1));
  daemon.add_adapter("q", megabyte_adapter(2));
  for (int i = 0; i < 8; ++i) daemon.add_adapter("x" + std::to_string(i), megabyte_adapter(10 + i));

  const auto pinned = ctl(daemon, {"pin", "p"});  // its connection ends with the command
  ASSERT_EQ(pinned.exit_code, 0) << pinned.err << daemon.log();
  EXPECT_NE(pinned.out.find("p pinned"), std::string::npos) << pinned.out;

  Client client = daemon.connect();
  for (int i = 0; i < 8; ++i) {
    auto r = client.load("x" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }
  EXPECT_GE(daemon.stat("evictions"), 5u) << "the budget was under pressure";
  auto list = client.list();
  ASSERT_TRUE(list.ok()) << list.status().to_string();
  const auto p = find(*list, "p");
  ASSERT_TRUE(p.has_value()) << "the pinned adapter was evicted";
  EXPECT_TRUE(p->pinned);
  EXPECT_EQ(p->generation, 1u) << "never reloaded";
  EXPECT_EQ(daemon.stat("adapters_pinned"), 1u);

  const auto over = ctl(daemon, {"pin", "q"});
  EXPECT_EQ(over.exit_code, 1);
  EXPECT_NE(over.err.find("error: pin_budget_exceeded:"), std::string::npos) << over.err;
  EXPECT_NE(over.err.find("--pin-budget"), std::string::npos) << over.err;

  const auto refused = ctl(daemon, {"unload", "p"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("error: pinned:"), std::string::npos) << refused.err;

  const auto json = ctl(daemon, {"list", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  bool listed = false;
  for (const auto& a : nlohmann::json::parse(json.out)) {
    if (a["name"] == "p") listed = a["pinned"] == true;
  }
  EXPECT_TRUE(listed) << json.out;

  auto unpinned = client.unpin("p");
  ASSERT_TRUE(unpinned.ok()) << unpinned.status().to_string();
  EXPECT_TRUE(unpinned->was_pinned);
  EXPECT_FALSE(unpinned->pinned);
  auto again = client.pin("q");
  ASSERT_TRUE(again.ok()) << "the pin budget has room again: " << again.status().to_string();
  auto freed = client.unload("p");
  ASSERT_TRUE(freed.ok()) << freed.status().to_string();
  EXPECT_EQ(freed->outcome, "freed");
  const auto not_resident = ctl(daemon, {"unpin", "p"});
  EXPECT_EQ(not_resident.exit_code, 1);
  EXPECT_NE(not_resident.err.find("error: not_loaded:"), std::string::npos) << not_resident.err;
}

// Pins outlive the connection that made them. Under the default pin budget
// (half of --budget) a client that pins until it is refused and then goes
// away leaves room for another client's acquire: it cannot starve everyone
// until an operator unpins.
TEST(Pin, UnderTheDefaultsAClientPinningUntilRefusedLeavesRoomForOthers) {
  Daemon daemon({.budget_bytes = 4ull << 20});  // about 1 MiB each: the budget holds three
  for (int i = 0; i < 4; ++i) daemon.add_adapter("p" + std::to_string(i), megabyte_adapter(20 + i));
  daemon.add_adapter("other", megabyte_adapter(30));
  std::size_t pinned = 0;
  {
    Client greedy = daemon.connect();
    Status refused = Status::Ok();
    for (int i = 0; i < 4 && refused.ok(); ++i) {
      auto r = greedy.pin("p" + std::to_string(i));
      if (r.ok()) ++pinned;
      else refused = r.status();
    }
    EXPECT_EQ(refused.code(), Errc::pin_budget_exceeded) << refused.to_string();
    EXPECT_NE(refused.message().find("--pin-budget"), std::string::npos) << refused.message();
  }  // the greedy client disconnects; its pins stay
  EXPECT_GE(pinned, 1u);
  EXPECT_EQ(daemon.stat("adapters_pinned"), pinned);
  EXPECT_LE(daemon.stat("bytes_pinned"), 2ull << 20) << "half the budget";
  Client other = daemon.connect();
  auto lease = other.acquire("other");
  ASSERT_TRUE(lease.ok()) << "another client still gets room: " << lease.status().to_string();
}

TEST(Pin, ThePinBudgetFlagIsValidatedAndDocumentedInHelp) {
  const auto help = run_command({binary("genomed"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--pin-budget SIZE"), std::string::npos);
  const auto bad = run_command({binary("genomed"), "--socket", "/tmp/x", "--root", "/tmp",
                                "--pin-budget", "lots"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--pin-budget"), std::string::npos) << bad.err;
  const auto ctl_help = run_command({binary("genomectl"), "--help"});
  EXPECT_NE(ctl_help.out.find("pin NAME"), std::string::npos);
  EXPECT_NE(ctl_help.out.find("unpin NAME"), std::string::npos);
}

TEST(Pin, APinsKeepAliveFromTheCppClientStartsWhenItIsUnpinned) {
  Daemon daemon;  // --idle-unload off: only the pin's keep_alive can unload it
  daemon.add_adapter("a", megabyte_adapter(1));
  Client client = daemon.connect();
  auto pinned = client.pin(
      "a", LoadOptions{.keep_alive = std::chrono::milliseconds(100), .priority = Priority::high});
  ASSERT_TRUE(pinned.ok()) << pinned.status().to_string();
  EXPECT_TRUE(pinned->pinned);
  ASSERT_TRUE(client.unpin("a").ok());
  ASSERT_TRUE(eventually([&] { return client.list().value().empty(); }, 30000))
      << "the keep_alive the pin set never unloaded 'a'\n"
      << daemon.log();
  EXPECT_EQ(daemon.stat("idle_unloads"), 1u);
}

TEST(Pin, GenomectlPinTakesKeepAliveAndPriority) {
  Daemon daemon;  // --idle-unload off: only the pin's keep_alive can unload it
  daemon.add_adapter("a", megabyte_adapter(1));
  const auto pinned = ctl(daemon, {"pin", "a", "--keep-alive", "100ms", "--priority", "high"});
  ASSERT_EQ(pinned.exit_code, 0) << pinned.err;
  EXPECT_NE(pinned.out.find("a pinned"), std::string::npos) << pinned.out;
  const auto unpinned = ctl(daemon, {"unpin", "a"});
  ASSERT_EQ(unpinned.exit_code, 0) << unpinned.err;
  Client client = daemon.connect();
  ASSERT_TRUE(eventually([&] { return client.list().value().empty(); }, 30000))
      << "the keep-alive genomectl pin set never unloaded 'a'\n"
      << daemon.log();
  EXPECT_EQ(daemon.stat("idle_unloads"), 1u);
  const auto refused = ctl(daemon, {"unpin", "a", "--keep-alive", "1s"});
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("--keep-alive applies to load, acquire and pin"), std::string::npos)
      << refused.err;
}

}  // namespace
}  // namespace genomed::testing
