// genome-stress's command line: a run that would execute nothing is refused
// before it starts, and `--chaos` alone asks for every kind that applies to
// the target (the target decides which run; docs/stress.md), where a SPEC
// naming a kind the target cannot allow stays a usage error.
#include "tools/stress/options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace genomed::stress {
namespace {

Result<Options> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "genome-stress");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parse_options(static_cast<int>(argv.size()), argv.data());
}

TEST(StressOptions, ARunOfNoTimeIsRefused) {
  for (const char* d : {"0", "0s", "0ms", "0.4ms", "0h"}) {
    const auto o = parse({"--spawn", "--duration", d});
    ASSERT_FALSE(o.ok()) << d;
    EXPECT_NE(o.status().message().find("--duration: at least 1ms"), std::string::npos)
        << o.status().message();
  }
  const auto shortest = parse({"--spawn", "--duration", "1ms"});
  ASSERT_TRUE(shortest.ok()) << shortest.status().to_string();
  EXPECT_EQ(shortest->duration.count(), 1);
}

TEST(StressOptions, ChaosAloneAgainstARunningDaemonAsksForEveryKind) {
  const auto o = parse({"--socket", "/run/genomed.sock", "--root", "/srv/adapters", "--chaos"});
  ASSERT_TRUE(o.ok()) << o.status().to_string();
  EXPECT_TRUE(o->chaos_every_kind);
  EXPECT_EQ(o->chaos.to_string(), default_chaos_rates().to_string())
      << "the target decides which kinds apply (ChaosMonkey), not the parser";
  const auto also_with_flags_after = parse(
      {"--socket", "/run/genomed.sock", "--root", "/srv/adapters", "--chaos", "--clients", "2"});
  ASSERT_TRUE(also_with_flags_after.ok()) << also_with_flags_after.status().to_string();
  EXPECT_EQ(also_with_flags_after->clients, 2);
}

TEST(StressOptions, ReplaceFilesNamedAgainstARunningDaemonIsRefused) {
  for (const char* spec : {"replace-files", "replace-files=1", "kill-workers=0.1,replace-files"}) {
    const auto o =
        parse({"--socket", "/run/genomed.sock", "--root", "/srv/adapters", "--chaos", spec});
    ASSERT_FALSE(o.ok()) << spec;
    EXPECT_NE(o.status().message().find("only with --spawn"), std::string::npos)
        << o.status().message();
  }
  const auto named = parse({"--spawn", "--chaos", "replace-files"});
  ASSERT_TRUE(named.ok()) << named.status().to_string();
  EXPECT_FALSE(named->chaos_every_kind);
  EXPECT_EQ(named->chaos.to_string(), "replace-files=0.2");
}

}  // namespace
}  // namespace genomed::stress
