// genome-bench's command line: what a run measures and how long (--quick),
// where its files and binaries are, and the profiling / A-B modes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace genomed::bench {

struct Options {
  bool quick = false;
  bool keep_tmp = false;
  std::string json_path;
  std::string genomed;  // default: next to this executable
  std::vector<std::string> genomed_args;  // --genomed-arg: appended to every daemon's command line
  int workers_n = 2;
  std::uint64_t budget = 1280ull << 20;
  // Profiling modes (run one loop under perf/strace instead of the report).
  std::string profile_cold;  // "16m" | "128m" | "512m"
  std::string profile_hit;   // "hot" | "hot-small"
  // --profile-cold from disk: the adapter's files on a real disk (--cold-dir),
  // dropped from the page cache before each repetition.
  bool profile_disk = false;
  int profile_reps = 20;
  int churn_override = 0;
  double profile_seconds = 5;
  int throughput_rounds = 0;  // --throughput-only: rounds of the 16-client comparison
  // Cold from disk (issue 24): adapter sizes in MiB (empty = the default for
  // the mode), and where their files go (empty = the first of /var/tmp and
  // the build directory that is a real disk).
  std::vector<std::uint64_t> cold_mib;
  std::string cold_dir;
  // The Python that runs bench/cold_python_load.py (safetensors load_file,
  // fastsafetensors) on the same cold files; default: the build's venv.
  std::string python;
  // Derived from --quick.
  int reps = 5;                // cold loads and baseline repetitions (medians)
  int hit_iterations = 20000;  // latency samples (hit and raw socket alike)
  int churn_cycles = 1000;
  int churn_warmup = 200;  // lets malloc and the thread-stack cache settle first (see docs)
  int dedup_clients = 256;
  double throughput_seconds = 3.0;  // per client count, split in 3 interleaved rounds
};

// The directory of the running executable (genomed, genome-worker and the
// venv are looked up next to it).
std::string self_dir();

// Parses argv; --help prints the usage and exits 0, a bad argument dies
// (run_cleanup.h) naming it.
Options parse_options(int argc, char** argv);

}  // namespace genomed::bench
