// What one genome-bench run measures: the figures of each step of the full
// run (bench/genome_bench.cc measures them; bench/report.h turns them into
// rows, ratios, targets and the JSON), and the statistics over samples.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cold_load.h"
#include "tools/fixture/fixture.h"

namespace genomed::bench {

// The median; NAN without samples.
inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Nearest-rank percentile, p in (0, 100].
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

// One generated adapter.
struct Adapter {
  std::string name;
  std::string label;  // "16m" ...
  fixture::AdapterSpec spec;
  std::string weights;      // path of adapter_model.safetensors
  std::uint64_t bytes = 0;  // weights file size
};

// Cold loads of one adapter.
struct ColdResult {
  double median_gbps = NAN;
  double first_gbps = NAN;  // the first load into a range of the arena never used before
  std::vector<double> seconds;
};

// The daemon's size at one moment (the churn's leak check).
struct Snapshot {
  std::uint64_t bytes_resident = 0, rss_kb = 0, fds = 0;
  std::uint64_t rss_anon_kb = 0, rss_shmem_kb = 0, threads = 0;  // for diagnosis
};

// Every adapter the full run measures, generated under `root`.
struct BenchAdapters {
  std::vector<Adapter> sizes;  // the cold loads: 16m, 128m, 512m
  Adapter par_b;               // a second 128m one, loaded beside sizes[1]
  Adapter hot, hot_small;      // the hit path
  Adapter churn, dedup;
};

// The raw baselines genomed's figures are compared with.
struct Baselines {
  double memcpy_gbps = NAN;
  std::map<std::string, double> inproc, inmmap;  // by adapter label
};

// Cold loads of each size, one after the other, then two 128m ones at once.
struct ColdFigures {
  std::map<std::string, ColdResult> by_size;  // by adapter label
  double parallel = NAN;                      // GB/s of two at once
};

// The hit path against raw round trips of the same frame sizes.
struct HitFigures {
  double p50 = NAN, p99 = NAN, small_p50 = NAN, small_p99 = NAN, rtt_p50 = NAN, rtt_p99 = NAN;
  // The same without lease slots: every acquire a round trip, every release a message.
  double socket_p50 = NAN, socket_tput16 = NAN;
  std::map<int, double> tput, sock_tput;  // by clients (pairs)
  double small_tput16 = NAN;
};

// Load + unload of a small adapter; nothing may grow.
struct ChurnFigures {
  Snapshot before, after;
  std::vector<std::uint64_t> rss_trace;  // VmRSS after every tenth of the cycles
  double rate = NAN;
  int cycles = 0;  // measured (after the warm-up)
};

// Many clients acquire one cold adapter at the same instant: one load.
struct DedupFigures {
  std::uint64_t loads = 0, ok = 0;
  double ms = NAN;
  int clients = 0;  // acquiring at once
};

// 100 concurrent cold acquires of 100 different adapters (the budget holds
// about a quarter): each should cause one load and one copy of its bytes.
constexpr int kPressureClients = 100;

struct PressureFigures {
  double loads_per_request = NAN, copies_per_byte = NAN;
  std::uint64_t ok = 0;
};

// Loads that find nothing in the page cache, against the device.
struct DiskFigures {
  std::string skipped;  // why nothing was measured ("" = measured)
  std::string dir;      // where the files were
  std::vector<Adapter> adapters;
  std::map<std::string, double> w1, wn;  // genomed, GB/s by adapter label
  // The device: the best shape's median from the shape search, and that
  // shape's median over samples taken one before each genomed sample (the
  // ratios' baseline: the same minutes of a shared machine).
  std::map<std::string, double> device, device_w1, device_wn;
  std::map<std::string, DirectReadShape> device_shape;
  // Python loaders of the same cold files, GB/s by loader then adapter
  // label; a loader that could not run has its reason instead.
  std::map<std::string, std::map<std::string, double>> python;
  std::map<std::string, std::string> python_skipped;
};

}  // namespace genomed::bench
