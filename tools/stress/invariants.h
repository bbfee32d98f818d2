// The daemon's invariants as a client can observe them, checked during the
// run (by every list and stats operation and by a monitor sampling once a
// second) and after the run, once the daemon has quiesced:
//   during: resident bytes within the budget; every listed state is one the
//           protocol defines; no load stays "loading" longer than the op deadline.
//   after:  the daemon settles (nothing loading, queued or waiting for
//           admission, nothing draining without leases) within
//           --quiesce-timeout; resident bytes equal the sum of the listed
//           entries and fit the budget; leases active equal what the harness
//           holds (0, then K while it holds K probe leases); workers back to
//           the configured number; every resident adapter verifies in full;
//           on the same host, fds/threads/RSS back to the baseline
//           (resources.h says the tolerance).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "genomed/client.h"
#include "tools/stress/error_policy.h"
#include "tools/stress/options.h"
#include "tools/stress/resources.h"
#include "tools/stress/tally.h"
#include "tools/stress/verifier.h"

namespace genomed::stress {

struct CheckResult {
  std::string name;
  std::uint64_t checked = 0;
  std::uint64_t violations = 0;
  std::string detail;  // the first violation, or what was observed
  bool ok() const { return violations == 0; }
};

// What the harness knows of its target.
struct DaemonFacts {
  std::string socket;
  pid_t pid = -1;              // -1: not inspectable from here
  int workers_configured = 0;  // 0: unknown
  std::uint64_t budget = 0;
  Footprint baseline;
};

class Invariants {
 public:
  Invariants(const Options& options, Tally& tally, const DaemonFacts& facts)
      : options_(options), tally_(tally), facts_(facts) {}

  // During the run; thread-safe.
  void check_stats(const Stats& stats);
  void check_list(const std::vector<AdapterInfo>& list);
  // The monitor's sample: the above plus loads stuck in "loading".
  void sample(const Stats& stats, const std::vector<AdapterInfo>& list);

  // After the run, with every workload client closed.
  void quiesce(const Corpus& corpus, const Verifier& verifier, const ErrorPolicy& policy,
               std::mt19937_64& rng);

  std::vector<CheckResult> results() const;

 private:
  // `detail`: what a violation shows; `observed`: what a pass shows.
  void record(const std::string& name, bool ok, const std::string& detail,
              const std::string& observed = "");

  const Options& options_;
  Tally& tally_;
  const DaemonFacts& facts_;
  mutable Mutex mu_;
  std::vector<CheckResult> results_ GUARDED_BY(mu_);  // in the order first recorded
  // name -> (generation, first seen loading); the monitor's thread only.
  std::map<std::string, std::pair<std::uint64_t, std::chrono::steady_clock::time_point>>
      loading_since_;
};

std::uint64_t stat_of(const Stats& stats, const std::string& key);

}  // namespace genomed::stress
