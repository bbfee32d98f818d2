// genome-stress's command line: what to run against (a running daemon or one
// it spawns), the workload, the chaos rates, verification and output. Parsed
// once in main; every other part of the harness reads this struct.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace genomed::stress {

// The operations a workload client performs, in report order.
enum class Op { acquire, batch, load, unload, list, stats, bad_acquire, count };
inline constexpr int kOps = static_cast<int>(Op::count);
const char* op_name(Op op);

// Chaos events per second, by kind (0: off).
struct ChaosRates {
  double kill_workers = 0;
  double stop_workers = 0;
  double kill_clients = 0;
  double bad_files = 0;
  double replace_files = 0;
  double rewrite_files = 0;
  double reload_files = 0;  // --spawn only: replace a copy's files, then RELOAD it
  double stop_daemon = 0;   // --spawn only
  bool any() const {
    return kill_workers > 0 || stop_workers > 0 || kill_clients > 0 || bad_files > 0 ||
           replace_files > 0 || rewrite_files > 0 || reload_files > 0 || stop_daemon > 0;
  }
  // Kinds that write the mutable copies' weights (--spawn only).
  bool writes_files() const { return replace_files > 0 || rewrite_files > 0 || reload_files > 0; }
  // Whether a kind that can make the daemon answer `timeout` is on: a
  // stopped worker misses its deadline (and a killed one's retry may).
  // A stopped daemon must never cause one (docs/failure-model.md §3).
  bool may_time_out() const { return kill_workers > 0 || stop_workers > 0 || bad_files > 0; }
  std::string to_string() const;  // "kill-workers=0.2,..." (only the kinds on)
};

// `--chaos` alone: every kind at these rates. With the restarts that stops
// and cancelled loads add, kills come close to the pool's default restart
// intensity (10 in 30 s): the pool trips it at times (docs/stress.md).
ChaosRates default_chaos_rates();

enum class VerifyMode { full, sample };

struct Options {
  // Target: attach (--socket + --root) or spawn.
  std::string socket;
  std::string root;
  bool spawn = false;
  std::string genomed_path;                // --genomed; default: next to this binary
  std::vector<std::string> daemon_flags;   // after `--`, passed to a spawned genomed
  int generate = 24;                       // --generate: adapters written when --spawn has no --root
  std::string bad_root;

  // Workload.
  int clients = 8;
  std::chrono::milliseconds duration = std::chrono::seconds(60);
  std::optional<std::uint64_t> ops;  // --ops N replaces --duration
  std::map<Op, int> mix;             // weights
  double zipf = 0;                   // 0: uniform popularity
  int hold_min_ms = 0;
  int hold_max_ms = 10;
  std::vector<std::string> adapters;  // --adapters; empty: every adapter of the root
  int batch_max = 4;

  // Chaos.
  ChaosRates chaos;
  // `--chaos` alone: every kind that applies to the target. Kinds the target
  // does not allow are then skipped with the reason in the report, where a
  // kind named in a SPEC that the target cannot allow is a usage error.
  bool chaos_every_kind = false;
  int mutable_adapters = 3;  // copies the harness rewrites for replace-files

  // Verification and limits.
  VerifyMode verify = VerifyMode::full;
  int sample_tensors = 4;
  std::chrono::milliseconds op_deadline = std::chrono::seconds(60);
  std::chrono::milliseconds quiesce_timeout = std::chrono::seconds(75);
  std::vector<std::string> allow;  // --allow: codes added to the allowed set
  bool shared = false;             // other clients use the daemon: no exact lease/resource checks

  // Output and reproduction.
  std::string json_path;
  std::uint64_t seed = 0;
  bool seed_given = false;
  bool keep = false;         // keep the scratch directory even when the run passed
  int status_interval_ms = 1000;
  std::vector<std::string> argv;  // as given, for the repeat line

  // Hidden: run as a victim client process (chaos kill-clients).
  bool victim = false;
  std::string victim_adapter;

  bool help = false;
};

extern const char* const kUsage;

// Parses argv; a usage error names the flag and what it expects.
Result<Options> parse_options(int argc, char** argv);

// "60s", "5m", "1h", "250ms", "90" (seconds).
Result<std::chrono::milliseconds> parse_duration(const std::string& text);

// The command line that repeats this run (with --seed).
std::string repeat_command(const Options& o);

}  // namespace genomed::stress
