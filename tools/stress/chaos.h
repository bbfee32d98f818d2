// The chaos: one thread injecting faults at --chaos rates (a Poisson process
// per kind): SIGKILL and SIGSTOP (then SIGCONT) of random genome-workers,
// SIGKILL of the harness's own client processes while they hold a lease or
// wait for a load, acquires of malformed adapters (which must be refused
// with a typed error), replacement of an adapter's weights (rename) or
// their rewrite in place while clients use it (the verifier accepts one
// whole version; a mix of two is a wrong_bytes failure), and SIGSTOP (then
// SIGCONT) of the daemon itself (--spawn only). Kinds the target does not
// allow (no inspectable daemon, no scratch root) are off, with a note in the
// report.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "tools/stress/corpus.h"
#include "tools/stress/error_policy.h"
#include "tools/stress/invariants.h"
#include "tools/stress/options.h"
#include "tools/stress/scratch_root.h"
#include "tools/stress/tally.h"
#include "tools/stress/victim.h"
#include "tools/testkit/proc.h"

namespace genomed::stress {

// The kinds that run against this target: those asked for (--chaos) less
// those it does not allow, each with why. Computed once, before the run:
// the ErrorPolicy accepts what the kinds that run may cause, not those
// asked for. `harness_root`: the harness owns the adapter root (--spawn).
struct EffectiveChaos {
  ChaosRates rates;
  std::vector<std::string> skipped;  // "KIND: why"
};
EffectiveChaos effective_chaos(const Options& options, const DaemonFacts& facts,
                               const Corpus& corpus, bool harness_root);

class ChaosMonkey {
 public:
  // `scratch` is null unless the harness owns the root (--spawn); `plan` is
  // effective_chaos() of the same target.
  ChaosMonkey(const Options& options, const DaemonFacts& facts, const Corpus& corpus,
              ScratchRoot* scratch, EffectiveChaos plan, const ErrorPolicy& policy, Tally& tally,
              std::string self_exe);
  ~ChaosMonkey();

  void start();
  // Stops injecting, resumes stopped workers, kills and reaps every victim.
  void stop();
  // The kinds that run, at their rates (those asked for, less the skipped).
  const ChaosRates& rates() const { return rates_; }
  // Each kind asked for that does not run: "KIND: why".
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  void loop();
  // Waits until `wake` or stop(); true if stopping.
  bool wait_until(std::chrono::steady_clock::time_point wake);
  void kill_worker();
  void stop_worker();
  void start_victim();
  void tend_victims(bool all);
  void bad_file();
  void replace_file();
  void rewrite_file();
  // A mutable adapter (index into the corpus) and its next version; false if none.
  bool next_mutable(std::size_t* index, int* version);
  // reload-files: the next version's files renamed in, then RELOAD.
  void reload_file();
  void stop_daemon();
  // SIGCONTs the stopped workers and daemon whose time has come (`all`: every one).
  void resume_due(bool all);

  const Options& options_;
  const DaemonFacts& facts_;
  const Corpus& corpus_;
  ScratchRoot* scratch_;
  const ErrorPolicy& policy_;
  Tally& tally_;
  std::string self_exe_;
  ChaosRates rates_;  // invariant: only kinds the target allows
  std::vector<std::string> skipped_;
  std::mt19937_64 rng_;
  std::optional<Client> client_;  // for bad-file acquires and unloads before victims
  std::vector<Victim> victims_;
  struct Stopped {
    testkit::ProcessRef worker;
    std::chrono::steady_clock::time_point resume_at;
  };
  std::vector<Stopped> stopped_;
  // When the daemon, stopped by stop_daemon(), is continued; empty while it runs.
  std::optional<std::chrono::steady_clock::time_point> daemon_resume_at_;
  std::vector<int> next_version_;
  int bad_written_ = 0;

  Mutex mu_;
  std::condition_variable cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace genomed::stress
