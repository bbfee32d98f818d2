// The errors a run accepts follow the chaos kinds that run against the
// target, not those asked for: a kind skipped causes nothing, so the codes
// it would cause stay failures (docs/stress.md, "Errors").
#include "tools/stress/error_policy.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tools/stress/chaos.h"

namespace genomed::stress {
namespace {

Options parse(std::vector<std::string> args) {
  args.insert(args.begin(), "genome-stress");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  auto o = parse_options(static_cast<int>(argv.size()), argv.data());
  EXPECT_TRUE(o.ok()) << o.status().to_string();
  return o.ok() ? std::move(o).value() : Options{};
}

TEST(StressErrorPolicy, ChaosAloneAgainstADaemonNotInspectableAcceptsOnlyWhatKillClientsCauses) {
  // Another host or pid namespace: no worker chaos, no bad or rewritten
  // files (neither --bad-root nor the harness's root): kill-clients alone runs.
  const Options o = parse({"--socket", "/run/genomed.sock", "--root", "/srv/adapters", "--chaos"});
  DaemonFacts facts;
  facts.pid = -1;
  const EffectiveChaos plan = effective_chaos(o, facts, Corpus{}, /*harness_root=*/false);
  EXPECT_EQ(plan.rates.to_string(), "kill-clients=0.5");
  EXPECT_EQ(plan.skipped.size(), 7u);  // reload-files among them

  const ErrorPolicy policy(o, plan.rates);
  for (Errc c : {Errc::worker_crashed, Errc::timeout, Errc::file_changed, Errc::quarantined,
                 Errc::circuit_open})
    EXPECT_FALSE(policy.allowed(c)) << errc_name(c) << " (allowed: " << policy.allowed_names()
                                    << ")";
  EXPECT_TRUE(policy.allowed(Errc::unhealthy));
  EXPECT_TRUE(policy.allowed(Errc::cancelled));
}

TEST(StressErrorPolicy, WorkerChaosThatRunsAcceptsCrashesAndTimeouts) {
  const Options o = parse({"--socket", "/run/genomed.sock", "--root", "/srv/adapters", "--chaos"});
  DaemonFacts facts;
  facts.pid = 4242;  // inspectable: kill-workers and stop-workers run
  const EffectiveChaos plan = effective_chaos(o, facts, Corpus{}, /*harness_root=*/false);
  const ErrorPolicy policy(o, plan.rates);
  EXPECT_TRUE(policy.allowed(Errc::worker_crashed));
  EXPECT_TRUE(policy.allowed(Errc::timeout));
}

}  // namespace
}  // namespace genomed::stress
