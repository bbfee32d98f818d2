// What a person reads: the live status line on a terminal (ops/s, p50/p99,
// errors by code, chaos events, failures), and the final report -- a table
// per operation (count, p50/p99/max, errors by code), chaos, verification,
// invariants, the verdict and the command line that repeats the run -- as
// text and, with --json FILE, as JSON.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "tools/stress/error_policy.h"
#include "tools/stress/invariants.h"
#include "tools/stress/options.h"
#include "tools/stress/tally.h"

namespace genomed::stress {

// Prints a one-line status to stderr every --status-interval-ms while it
// lives, if stderr is a terminal.
class StatusLine {
 public:
  StatusLine(const Options& options, const Tally& tally);
  ~StatusLine();

 private:
  void loop();
  const Options& options_;
  const Tally& tally_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct RunSummary {
  double seconds = 0;
  std::string target;  // "spawned: <command>" or "attached: <socket>"
  std::vector<std::string> notes;
  ChaosRates chaos_ran;                    // the kinds that ran, at their rates
  std::vector<std::string> chaos_skipped;  // "KIND: why" for each kind asked for that did not
  std::vector<CheckResult> checks;
  std::string allowed;
  std::string repeat;
  std::string kept_dir;  // scratch directory kept for inspection, if any
  bool passed = false;
};

void print_report(std::FILE* out, const Options& options, const Tally& tally,
                  const RunSummary& summary);
// False (with the reason on stderr) if the file cannot be written.
bool write_json(const std::string& path, const Options& options, const Tally& tally,
                const RunSummary& summary);

}  // namespace genomed::stress
