#include "options.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "common/size_parse.h"
#include "run_cleanup.h"

namespace genomed::bench {
namespace {

const char* kUsage = R"(usage: genome-bench [--quick] [--json FILE] [--workers-n N] [--budget SIZE]
                    [--genomed PATH] [--genomed-arg ARG]... [--keep-tmp]
                    [--cold-sizes LIST] [--cold-dir DIR] [--python PATH]

Starts its own genomed (the one built next to genome-bench), generates its own
adapters under /tmp, and prints each genomed figure with its raw baseline, the
ratio and the target of issue 4. The full run takes about 35 s on 2 cores
(docs/performance.md).

  --quick          a smaller, faster run (smoke test): fewer iterations
  --json FILE      also write every figure as a flat JSON object to FILE
  --workers-n N    worker count of the multi-worker daemon (default 2)
  --budget SIZE    the daemons' --budget (default 1280M; needs >= 1G)
  --genomed PATH   the genomed binary (default: next to genome-bench)
  --genomed-arg ARG one more argument for every genomed the run starts
                   (repeat for several: --genomed-arg --log-level
                   --genomed-arg debug), for A/B runs of its options
  --keep-tmp       keep the temporary directory (adapters, daemon logs)
  --churn-cycles N load+unload cycles of the churn check (default 1000;
                   100 with --quick)
  --cold-sizes LIST adapter sizes of the cold-from-disk loads, comma-separated
                   whole MiB (default 16m,128m,512m; 16m,128m with --quick)
  --cold-dir DIR   where the cold-from-disk adapters go (default: the first of
                   /var/tmp and genome-bench's directory that is not tmpfs and
                   takes O_DIRECT; none: those rows are skipped with the reason)
  --python PATH    the Python whose safetensors and fastsafetensors load the
                   same cold files (default: venv/bin/python next to
                   genome-bench, as scripts/python-env.sh makes it; a loader
                   that fails is skipped with the reason)

profiling modes (no report; run under perf record -a / strace -f):
  --profile-cold SIZE   start genomed --workers 1, then acquire+release+unload
                        the SIZE adapter (16m|128m|512m) --profile-reps times
  --profile-hit NAME    start genomed --workers 1, then run acquire+release of
                        NAME (hot: 256 tensors, hot-small: 4 tensors) with 16
                        clients for --profile-seconds, then 1 client likewise
  --profile-disk        with --profile-cold: the adapter's files on a real
                        disk (see --cold-dir), dropped from the page cache
                        before each repetition (untimed)
  --profile-reps N      (default 20)
  --profile-seconds S   (default 5)

A/B mode (for comparing builds on a noisy machine):
  --throughput-only R   only the 16-client acquire+release throughput of the
                        256-tensor adapter (with lease slots, then without)
                        against 16 raw round-trip pairs:
                        R rounds of 1 s each, alternating; prints each round's
                        ratio and their median (--json writes them)
)";

}  // namespace

std::string self_dir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  const std::string self(buf, static_cast<std::size_t>(n));
  return self.substr(0, self.rfind('/'));
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--keep-tmp") {
      o.keep_tmp = true;
    } else if (a == "--json") {
      o.json_path = value();
    } else if (a == "--genomed") {
      o.genomed = value();
    } else if (a == "--genomed-arg") {
      o.genomed_args.push_back(value());
    } else if (a == "--workers-n") {
      o.workers_n = std::atoi(value().c_str());
      if (o.workers_n < 1 || o.workers_n > 64) die("--workers-n: expected 1..64");
    } else if (a == "--budget") {
      auto size = genomed::parse_size(value());
      if (!size || *size < (1ull << 30)) die("--budget: expected a size of at least 1G");
      o.budget = *size;
    } else if (a == "--churn-cycles") {
      o.churn_override = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--cold-sizes") {
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) {
        const auto size = genomed::parse_size(item);
        if (!size || *size == 0 || *size % (1u << 20) != 0 || *size > (4ull << 30))
          die("--cold-sizes: expected whole MiB sizes up to 4G, such as 16m,128m,512m");
        o.cold_mib.push_back(*size >> 20);
      }
      if (o.cold_mib.empty()) die("--cold-sizes: expected at least one size");
    } else if (a == "--cold-dir") {
      o.cold_dir = value();
    } else if (a == "--python") {
      o.python = value();
    } else if (a == "--profile-cold") {
      o.profile_cold = value();
    } else if (a == "--profile-disk") {
      o.profile_disk = true;
    } else if (a == "--profile-hit") {
      o.profile_hit = value();
    } else if (a == "--profile-reps") {
      o.profile_reps = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--profile-seconds") {
      o.profile_seconds = std::max(0.1, std::atof(value().c_str()));
    } else if (a == "--throughput-only") {
      o.throughput_rounds = std::atoi(value().c_str());
      if (o.throughput_rounds < 1 || o.throughput_rounds > 1000)
        die("--throughput-only: expected 1..1000 rounds");
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      die("unknown argument '" + a + "'; see --help");
    }
  }
  if (o.profile_disk && o.profile_cold.empty()) die("--profile-disk goes with --profile-cold SIZE");
  if (o.genomed.empty()) o.genomed = self_dir() + "/genomed";
  if (o.python.empty()) o.python = self_dir() + "/venv/bin/python";
  if (o.quick) {
    o.reps = 2;
    o.hit_iterations = 2000;
    o.churn_cycles = 100;
    o.churn_warmup = 100;
    o.dedup_clients = 32;
    o.throughput_seconds = 0.6;
  }
  if (o.churn_override > 0) o.churn_cycles = o.churn_override;
  if (o.cold_mib.empty()) {
    o.cold_mib = o.quick ? std::vector<std::uint64_t>{16, 128}
                         : std::vector<std::uint64_t>{16, 128, 512};
  }
  return o;
}

}  // namespace genomed::bench
