// genome-bench: the issue-4 benchmark. One run measures every genomed figure
// next to the raw operation it competes with, on the same machine, and prints
// both and their ratio (the ratios are the claims; absolute figures drift).
//
//   genome-bench [--quick] [--json FILE] [--workers-n N] [--budget SIZE]
//                [--genomed PATH] [--keep-tmp]
//
// It generates its adapters under /tmp/genome-bench-XXXXXX (removed at the
// end), starts the genomed binary found next to itself (twice: --workers 1,
// then --workers N), and measures:
//   baselines  memcpy, in-process safetensors-style load (malloc + pread),
//              in-process mmap + read-every-word (Google Benchmark, median of
//              repetitions), raw Unix socketpair ping-pong (latency and
//              throughput with 1/4/16 pairs, frames the size of ACQUIRE);
//   genomed    cold loads (acquire of a non-resident adapter), hit latency
//              and throughput (acquire + release of a resident adapter: by
//              the default client, which takes repeats through its lease
//              slots, and by one without slots, whose every acquire is a
//              round trip), load/unload churn (leak check), singleflight dedup.
//   from disk  cold loads whose files were dropped from the page cache before
//              each sample, against the device's best parallel O_DIRECT read
//              of the same file (bench/cold_load.h; files under --cold-dir).
// bench/figures.h holds what a run measures, bench/report.h how it is
// reported (rows, JSON, verdict), bench/baselines.h the raw operations,
// bench/options.h the command line, bench/run_cleanup.h what a failed run
// undoes; this file measures genomed. docs/performance.md
// explains every figure and the latest results.
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "baselines.h"
#include "cold_load.h"
#include "figures.h"
#include "options.h"
#include "report.h"
#include "run_cleanup.h"
#include "genomed/client.h"
#include "tools/fixture/fixture.h"
#include "tools/testkit/daemon_process.h"
#include "tools/testkit/proc.h"

namespace {

using genomed::Client;
using genomed::Lease;
namespace fs = std::filesystem;
namespace fixture = genomed::fixture;
namespace testkit = genomed::testkit;
using namespace genomed::bench;  // figures.h, report.h, cold_load.h, options.h, baselines.h, run_cleanup.h

// ---- adapters ------------------------------------------------------------------

fixture::AdapterSpec lora(std::uint32_t rank, std::uint32_t layers, std::uint32_t hidden,
                          std::vector<std::string> modules, std::uint64_t seed) {
  fixture::AdapterSpec s;
  s.rank = rank;
  s.layers = layers;
  s.hidden = hidden;
  s.dtype = genomed::layout::DType::F16;
  s.target_modules = std::move(modules);
  s.seed = seed;
  return s;
}

Adapter make_adapter(const std::string& root, const std::string& name, const std::string& label,
                     const fixture::AdapterSpec& spec) {
  Adapter a{name, label, spec, root + "/" + name + "/adapter_model.safetensors", 0};
  if (auto s = fixture::write_adapter(root + "/" + name, spec); !s.ok())
    die("fixture: " + s.to_string());
  a.bytes = fs::file_size(a.weights);
  return a;
}

// Reads a file once so that every later read of it comes from the page cache.
void warm_page_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open " + path + ": " + std::strerror(errno));
  std::vector<char> buf(8 << 20);
  while (::read(fd, buf.data(), buf.size()) > 0) {
  }
  ::close(fd);
}

// ---- the daemon --------------------------------------------------------------------

struct Daemon {
  pid_t pid = -1;
  std::string socket;
  std::string log;
  int workers = 1;
  double prefault_ms = NAN;  // from the daemon's log
};

Daemon start_daemon(const Options& o, const std::string& tmp, const std::string& root, int workers,
                    const std::string& tag = "") {
  Daemon d;
  d.workers = workers;
  d.socket = tmp + "/genomed-w" + std::to_string(workers) + tag + ".sock";
  d.log = tmp + "/genomed-w" + std::to_string(workers) + tag + ".log";
  const std::string budget = std::to_string(o.budget >> 20) + "M";
  std::vector<std::string> args = {o.genomed, "--socket",  d.socket,
                                   "--root",  root,        "--budget",
                                   budget,    "--workers", std::to_string(workers)};
  args.insert(args.end(), o.genomed_args.begin(), o.genomed_args.end());
  const auto t0 = Clock::now();
  auto started = testkit::start_genomed(args, d.log);
  if (!started) die(started.status().message());
  const pid_t pid = started->pid;
  d.pid = pid;
  track_daemon(pid);
  const double ready_ms = started->ready_ms;
  // genomed faults the arena in on a background thread after start and logs
  // "arena of SIZE faulted in (N ms)". Loads measured before that compete
  // with it, so wait for the line (an older genomed never logs it: give up
  // after 30 s and say so).
  for (;;) {
    std::ifstream in(d.log);
    std::string line;
    bool found = false;
    while (std::getline(in, line)) {
      const auto at = line.find("faulted in (");
      if (at != std::string::npos) {
        d.prefault_ms = std::atof(line.c_str() + at + 12);
        found = true;
      }
    }
    if (found) break;
    if (seconds_since(t0) > 30) {
      std::printf("note: genomed did not log that its arena is faulted in; measuring anyway\n");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::printf(
      "started genomed pid %d: --workers %d --budget %s (accepting after %.0f ms, arena faulted in "
      "after %.0f ms)\n",
      pid, workers, budget.c_str(), ready_ms, d.prefault_ms);
  std::fflush(stdout);
  return d;
}

void stop_daemon(Daemon& d) {
  if (d.pid <= 0) return;
  ::kill(d.pid, SIGTERM);
  const auto t0 = Clock::now();
  int status = 0;
  while (::waitpid(d.pid, &status, WNOHANG) == 0) {
    if (seconds_since(t0) > 15) {
      std::fprintf(stderr, "genome-bench: genomed pid %d ignored SIGTERM for 15 s; killing it\n",
                   d.pid);
      ::kill(d.pid, SIGKILL);
      ::waitpid(d.pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  untrack_daemon(d.pid);
  d.pid = -1;
}

// `slots` false: a client without lease slots, whose every acquire and
// release is a message (what the Python client, and a first acquire, pay).
Client connect(const Daemon& d, bool slots = true) {
  genomed::ClientOptions options;
  options.client_name = "genome-bench";
  options.lease_slots = slots;
  auto c = Client::connect(d.socket, options);
  if (!c) die("connect: " + c.status().to_string());
  return std::move(c).value();
}

std::uint64_t stat_u64(Client& c, const std::string& key) {
  auto stats = c.stats();
  if (!stats) die("stats: " + stats.status().to_string());
  for (const auto& [k, v] : *stats) {
    if (k == key && std::holds_alternative<std::uint64_t>(v)) return std::get<std::uint64_t>(v);
  }
  die("stats has no counter '" + key + "'");
}

void unload_or_die(Client& c, const std::string& name) {
  auto u = c.unload(name);
  if (!u) die("unload " + name + ": " + u.status().to_string());
  if (u->outcome != "freed")
    die("unload " + name + ": outcome '" + u->outcome + "', expected 'freed'");
}

// A field of /proc/PID/status ("VmRSS", "RssAnon", "Threads", ...), as a number.
std::uint64_t proc_status(pid_t pid, const std::string& field) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, testkit::status_field(pid, field)));
}

using testkit::open_fds;

// CPU placement for the latency phase. A Unix-socket round trip costs very
// different amounts when both ends share a core and when the peer must be
// woken on the other core (an IPI on this VM), and the scheduler's choice
// varies from run to run. So the headline latency figures pin the client
// (this thread) to one CPU and the server side (echo process or every genomed
// thread) to another: cross-core, the same placement for baseline and genomed.
bool pin_task(pid_t tid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu >= 0) {
    CPU_SET(cpu, &set);
  } else {
    for (int c = 0; c < CPU_SETSIZE && c < static_cast<int>(std::thread::hardware_concurrency());
         ++c)
      CPU_SET(c, &set);
  }
  return ::sched_setaffinity(tid, sizeof set, &set) == 0;
}

// Pins every thread of process `pid` (cpu < 0: unpins). Threads created later
// inherit their creator's mask (genomed's extra request threads start from a
// request thread).
void pin_process(pid_t pid, int cpu) {
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    (void)pin_task(static_cast<pid_t>(std::atoi(it->path().filename().c_str())), cpu);
  }
}

// ---- genomed measurements ---------------------------------------------------------------

// Acquire of a non-resident adapter: the client round trip including probe
// and fill; then release and unload so that the next acquire is cold again.
// `before_each` runs before every sample, untimed (the cold-from-disk loads
// drop the adapter's files from the page cache there).
ColdResult cold_loads(Client& c, const Adapter& a, int reps,
                      const std::function<void()>& before_each = {}) {
  ColdResult r;
  std::vector<double> gbps;
  for (int i = 0; i < reps; ++i) {
    if (before_each) before_each();
    const auto t0 = Clock::now();
    auto lease = c.acquire(a.name);
    const double s = seconds_since(t0);
    if (!lease) die("cold acquire " + a.name + ": " + lease.status().to_string());
    if (lease->bytes().size() < a.bytes - 4096 * 64)
      die("cold acquire " + a.name + ": short range");
    lease->release();
    unload_or_die(c, a.name);
    r.seconds.push_back(s);
    gbps.push_back(static_cast<double>(a.bytes) / s / kGB);
  }
  r.first_gbps = gbps.front();
  r.median_gbps = median(gbps);
  return r;
}

// Two different adapters acquired cold at once by two clients: aggregate GB/s.
double parallel_cold_loads(const Daemon& d, const Adapter& a, const Adapter& b, int reps) {
  Client ca = connect(d), cb = connect(d);
  std::vector<double> gbps;
  for (int i = 0; i < reps; ++i) {
    std::barrier start(2);
    Clock::time_point begin[2], end[2];
    auto run = [&](int k, Client& c, const Adapter& ad) {
      start.arrive_and_wait();
      begin[k] = Clock::now();
      auto lease = c.acquire(ad.name);
      end[k] = Clock::now();
      if (!lease) die("parallel cold acquire " + ad.name + ": " + lease.status().to_string());
    };
    std::thread ta(run, 0, std::ref(ca), std::cref(a));
    std::thread tb(run, 1, std::ref(cb), std::cref(b));
    ta.join();
    tb.join();
    const double s =
        std::chrono::duration<double>(std::max(end[0], end[1]) - std::min(begin[0], begin[1]))
            .count();
    gbps.push_back(static_cast<double>(a.bytes + b.bytes) / s / kGB);
    // Each on the connection that released its lease: RELEASE is one-way, so
    // only a later request on the same connection is ordered after it.
    unload_or_die(ca, a.name);
    unload_or_die(cb, b.name);
  }
  return median(gbps);
}

// acquire + release of a resident adapter: appends microseconds per pair.
void hit_block(Client& c, const std::string& name, int warmup, int iterations,
               std::vector<double>& us) {
  for (int i = -warmup; i < iterations; ++i) {
    const auto t0 = Clock::now();
    auto lease = c.acquire(name);
    if (!lease) die("hit acquire " + name + ": " + lease.status().to_string());
    lease->release();
    if (i >= 0) us.push_back(seconds_since(t0) * 1e6);
  }
}

double hit_throughput(const Daemon& d, const std::string& name, int threads, double seconds,
                      bool slots = true) {
  std::vector<Client> clients;
  for (int t = 0; t < threads; ++t) clients.push_back(connect(d, slots));
  return run_for(threads, seconds, [&](int t) {
    auto lease = clients[static_cast<std::size_t>(t)].acquire(name);
    if (!lease) {
      std::fprintf(stderr, "acquire: %s\n", lease.status().to_string().c_str());
      return false;
    }
    lease->release();
    return true;
  });
}

Snapshot snapshot(Client& c, pid_t pid) {
  Snapshot s;
  s.bytes_resident = stat_u64(c, "bytes_resident");
  s.rss_kb = proc_status(pid, "VmRSS");
  s.rss_anon_kb = proc_status(pid, "RssAnon");
  s.rss_shmem_kb = proc_status(pid, "RssShmem");
  s.threads = proc_status(pid, "Threads");
  s.fds = open_fds(pid);
  return s;
}

// The profiling modes: one loop against a fresh genomed, nothing else.
// --profile-disk: the adapter on a real disk, dropped before each repetition.
int run_profile(const Options& o, const std::string& tmp, const std::string& tmp_root) {
  std::string cold_dir, root = tmp_root;
  if (o.profile_disk) {
    std::string why;
    cold_dir = make_cold_scratch(o.cold_dir, o.keep_tmp, &why);
    if (cold_dir.empty()) die("--profile-disk: no directory for cold files: " + why);
    root = cold_dir + "/adapters";
  }
  const std::vector<std::string> qv = {"q_proj", "v_proj"};
  const std::vector<std::string> qkvo = {"q_proj", "k_proj", "v_proj", "o_proj"};
  std::optional<Adapter> a;
  if (o.profile_cold == "16m")
    a = make_adapter(root, "cold-16m", "16m", lora(64, 8, 4096, qv, 16));
  else if (o.profile_cold == "128m")
    a = make_adapter(root, "cold-128m", "128m", lora(64, 64, 4096, qv, 128));
  else if (o.profile_cold == "512m")
    a = make_adapter(root, "cold-512m", "512m", lora(256, 64, 4096, qv, 512));
  else if (o.profile_hit == "hot")
    a = make_adapter(root, "hot", "32m", lora(16, 32, 4096, qkvo, 7));
  else if (o.profile_hit == "hot-small")
    a = make_adapter(root, "hot-small", "16k", lora(8, 1, 256, qv, 8));
  else
    die("--profile-cold takes 16m|128m|512m, --profile-hit takes hot|hot-small");
  if (!o.profile_disk) warm_page_cache(a->weights);
  Daemon d = start_daemon(o, tmp, root, 1);
  Client c = connect(d);
  std::printf("profile: genomed pid %d\n", d.pid);
  std::fflush(stdout);
  if (!o.profile_cold.empty()) {
    const std::string dir = root + "/" + a->name;
    const ColdResult r = cold_loads(c, *a, o.profile_reps, [&] {
      if (!o.profile_disk) return;
      if (auto s = genomed::bench::drop_dir_from_page_cache(dir); !s.ok())
        die("--profile-disk sample of " + a->name + ": " + s.to_string());
    });
    for (std::size_t i = 0; i < r.seconds.size(); ++i) {
      std::printf("cold %s #%zu: %.2f ms = %.3f GB/s\n", a->label.c_str(), i, r.seconds[i] * 1e3,
                  static_cast<double>(a->bytes) / r.seconds[i] / kGB);
    }
    std::printf("median %.3f GB/s\n", r.median_gbps);
  } else {
    if (auto l = c.load(a->name); !l) die("load: " + l.status().to_string());
    std::printf("16 clients: %.0f acquire+release/s\n",
                hit_throughput(d, a->name, 16, o.profile_seconds));
    std::printf("1 client: %.0f acquire+release/s\n",
                hit_throughput(d, a->name, 1, o.profile_seconds));
  }
  stop_daemon(d);
  if (!cold_dir.empty()) remove_cold_scratch(cold_dir, o.keep_tmp);
  return 0;
}

// --throughput-only: the 16-client hit throughput against raw round trips,
// alternating in 1 s rounds, so that a comparison of two builds run one after
// the other rests on many same-moment ratios rather than one.
int run_throughput_only(const Options& o, const std::string& tmp, const std::string& root) {
  const std::vector<std::string> qkvo = {"q_proj", "k_proj", "v_proj", "o_proj"};
  const Adapter hot = make_adapter(root, "hot", "32m", lora(16, 32, 4096, qkvo, 7));
  warm_page_cache(hot.weights);
  const FrameSizes frames = measure_frames(hot.name);
  Daemon d = start_daemon(o, tmp, root, 1);
  {
    Client c = connect(d);
    if (auto l = c.load(hot.name); !l) die("load hot: " + l.status().to_string());
  }
  std::vector<double> ratios, hits, raws, socket_ratios, socket_hits;
  for (int r = 0; r < o.throughput_rounds; ++r) {
    const double hit = hit_throughput(d, hot.name, 16, 1.0);
    const double raw = socket_throughput(frames, 16, 1.0);
    const double by_request = hit_throughput(d, hot.name, 16, 1.0, /*slots=*/false);
    hits.push_back(hit);
    raws.push_back(raw);
    ratios.push_back(hit / raw);
    socket_hits.push_back(by_request);
    socket_ratios.push_back(by_request / raw);
    std::printf(
        "round %d: genomed %.0f/s (without lease slots %.0f/s), raw %.0f/s, ratio %.3f "
        "(without lease slots %.3f)\n",
        r + 1, hit, by_request, raw, hit / raw, by_request / raw);
    std::fflush(stdout);
  }
  std::printf(
      "median ratio %.3f (genomed %.0f/s, raw %.0f/s); without lease slots %.3f (%.0f/s)\n",
      median(ratios), median(hits), median(raws), median(socket_ratios), median(socket_hits));
  stop_daemon(d);
  if (!o.json_path.empty()) {
    Json j;
    j["throughput_rounds"] = o.throughput_rounds;
    j["hit_throughput_ops_16"] = median(hits);
    j["socket_rtt_throughput_16"] = median(raws);
    j["hit_throughput_16_vs_rtt"] = median(ratios);
    j["hit_socket_throughput_ops_16"] = median(socket_hits);
    j["hit_socket_throughput_16_vs_rtt"] = median(socket_ratios);
    write_json(o.json_path, j);
  }
  return 0;
}

// ---- the full run, step by step ------------------------------------------------------------

const std::vector<std::string> kQV = {"q_proj", "v_proj"};
const std::vector<std::string> kQKVO = {"q_proj", "k_proj", "v_proj", "o_proj"};

BenchAdapters generate_adapters(const std::string& root) {
  // Adapters. F16, hidden 4096, q_proj+v_proj: rank 64 x 8 layers = 16 MiB,
  // x 64 layers = 128 MiB, rank 256 x 64 layers = 512 MiB (plus the header).
  std::printf("generating adapters in %s ...\n", root.c_str());
  std::fflush(stdout);
  const std::vector<std::string>& qv = kQV;
  const std::vector<std::string>& qkvo = kQKVO;
  BenchAdapters a{
      .sizes =
          {
              make_adapter(root, "cold-16m", "16m", lora(64, 8, 4096, qv, 16)),
              make_adapter(root, "cold-128m", "128m", lora(64, 64, 4096, qv, 128)),
              make_adapter(root, "cold-512m", "512m", lora(256, 64, 4096, qv, 512)),
          },
      .par_b = make_adapter(root, "cold-128m-b", "128m", lora(64, 64, 4096, qv, 129)),
      // The hit path: a realistic 7B-model LoRA (r16, q/k/v/o, 32 layers: 256
      // tensors, 32 MiB), and a 4-tensor one to separate per-tensor client work.
      .hot = make_adapter(root, "hot", "32m", lora(16, 32, 4096, qkvo, 7)),
      .hot_small = make_adapter(root, "hot-small", "16k", lora(8, 1, 256, qv, 8)),
      .churn = make_adapter(root, "churn", "32k", lora(8, 2, 256, qv, 9)),
      .dedup = make_adapter(root, "dedup", "16m", lora(64, 8, 4096, qv, 10)),
  };
  for (const Adapter* ad : std::initializer_list<const Adapter*>{
           &a.sizes[0], &a.sizes[1], &a.sizes[2], &a.par_b, &a.hot, &a.hot_small, &a.churn,
           &a.dedup}) {
    warm_page_cache(ad->weights);
  }
  return a;
}

Baselines measure_baselines(const Options& o, const std::vector<Adapter>& sizes,
                            const FrameSizes& frames, Json& j) {
  std::printf(
      "\n== baselines: memcpy, in-process load, in-process mmap (Google Benchmark, median of %d) "
      "==\n",
      std::max(o.reps, 2));
  std::fflush(stdout);
  const auto micro = run_micro_benchmarks(o, sizes);
  auto micro_gbps = [&](const std::string& name) {
    const auto it = micro.find(name);
    if (it == micro.end()) die("no result for micro benchmark " + name);
    return it->second / kGB;
  };
  Baselines b;
  b.memcpy_gbps = micro_gbps("memcpy_256m");
  j["memcpy_gbps"] = b.memcpy_gbps;
  for (const Adapter& a : sizes) {
    b.inproc[a.label] = micro_gbps("inprocess_load_" + a.label);
    b.inmmap[a.label] = micro_gbps("inprocess_mmap_" + a.label);
    j["inprocess_load_gbps_" + a.label] = b.inproc[a.label];
    j["inprocess_mmap_gbps_" + a.label] = b.inmmap[a.label];
  }
  j["inprocess_load_gbps"] = b.inproc["128m"];
  j["inprocess_mmap_gbps"] = b.inmmap["128m"];

  std::printf("\n== baselines: Unix socketpair ping-pong between two processes ==\n");
  j["acquire_request_frame_bytes"] = frames.acquire_request;
  j["acquire_reply_frame_bytes"] = frames.acquire_reply;
  j["release_request_frame_bytes"] = frames.release_request;
  std::printf("frames: acquire request %zu B, reply %zu B (release %zu B, one-way)\n",
              frames.acquire_request, frames.acquire_reply, frames.release_request);
  return b;
}

// Cold loads of each size, one after the other, then two 128m ones at once.
ColdFigures measure_cold(const Daemon& d, Client& c, const BenchAdapters& ad, int reps) {
  ColdFigures r;
  for (const Adapter& a : ad.sizes) {
    r.by_size[a.label] = cold_loads(c, a, reps);
    std::printf("cold load %-5s: median %.3f GB/s (first %.3f GB/s)\n", a.label.c_str(),
                r.by_size[a.label].median_gbps, r.by_size[a.label].first_gbps);
    std::fflush(stdout);
  }
  r.parallel = parallel_cold_loads(d, ad.sizes[1], ad.par_b, reps);
  std::printf("two 128m cold loads at once: %.3f GB/s aggregate\n", r.parallel);
  return r;
}

// Hit latency: one client, the hot adapters resident; `by_request` takes no
// lease slots. Ends the echo peer.
void measure_hit_latency(const Options& o, const Daemon& d1, Client& c, Client& by_request,
                         const BenchAdapters& ad, EchoPeer& echo, HitFigures& h, Json& j) {
  // Ten alternating blocks of genomed hits and raw round trips, pinned
  // cross-core (see pin_process); then the same unpinned, for reference.
  std::vector<double> hits, small_hits, rtt, free_hits, free_rtt, socket_hits;
  constexpr int kBlocks = 10;
  const int per_block = std::max(1, o.hit_iterations / kBlocks);
  const bool pinned = std::thread::hardware_concurrency() >= 2 && pin_task(0, 0);
  if (pinned) {
    pin_process(d1.pid, 1);
    pin_process(echo.pid, 1);
  }
  for (int b = 0; b < kBlocks; ++b) {
    hit_block(c, ad.hot.name, 20, per_block, hits);
    socket_rtt_block(echo, 20, per_block, rtt);
    hit_block(c, ad.hot_small.name, 20, per_block, small_hits);
    hit_block(by_request, ad.hot.name, 20, per_block, socket_hits);
  }
  if (pinned) {
    pin_task(0, -1);
    pin_process(d1.pid, -1);
    pin_process(echo.pid, -1);
    for (int b = 0; b < kBlocks; ++b) {
      hit_block(c, ad.hot.name, 20, per_block / 2, free_hits);
      socket_rtt_block(echo, 20, per_block / 2, free_rtt);
    }
  }
  end_echo_server(echo.pairs, echo.pid);
  j["latency_pinned_cross_core"] = pinned;
  j["hit_unpinned_p50_us"] = percentile(free_hits, 50);
  j["socket_rtt_unpinned_p50_us"] = percentile(free_rtt, 50);
  std::printf("unpinned (scheduler's placement): hit p50 %.1f us, raw round trip p50 %.1f us\n",
              percentile(free_hits, 50), percentile(free_rtt, 50));
  h.p50 = percentile(hits, 50);
  h.p99 = percentile(hits, 99);
  h.small_p50 = percentile(small_hits, 50);
  h.small_p99 = percentile(small_hits, 99);
  h.rtt_p50 = percentile(rtt, 50);
  h.rtt_p99 = percentile(rtt, 99);
  std::printf("raw socket round trip: p50 %.1f us, p99 %.1f us\n", h.rtt_p50, h.rtt_p99);
  h.socket_p50 = percentile(socket_hits, 50);
  std::printf(
      "hit acquire+release: p50 %.1f us, p99 %.1f us (4-tensor adapter: p50 %.1f us, p99 %.1f "
      "us); without lease slots p50 %.1f us\n",
      h.p50, h.p99, h.small_p50, h.small_p99, h.socket_p50);
}

// Throughput: three rounds, each alternating genomed and the raw socket
// baseline (same machine state); medians of the rounds.
void measure_hit_throughput(const Options& o, const Daemon& d1, const BenchAdapters& ad,
                            const FrameSizes& frames, HitFigures& h, Json& j) {
  {
    constexpr int kRounds = 3;
    const double slice = o.throughput_seconds / kRounds;
    std::map<int, std::vector<double>> hit_runs, sock_runs;
    std::vector<double> small_runs, socket_runs;
    for (int r = 0; r < kRounds; ++r) {
      for (int n : {1, 4, 16}) {
        hit_runs[n].push_back(hit_throughput(d1, ad.hot.name, n, slice));
        sock_runs[n].push_back(socket_throughput(frames, n, slice));
      }
      small_runs.push_back(hit_throughput(d1, ad.hot_small.name, 16, slice));
      socket_runs.push_back(hit_throughput(d1, ad.hot.name, 16, slice, /*slots=*/false));
    }
    for (int n : {1, 4, 16}) {
      h.tput[n] = median(hit_runs[n]);
      h.sock_tput[n] = median(sock_runs[n]);
      j["socket_rtt_throughput_" + std::to_string(n)] = h.sock_tput[n];
    }
    h.small_tput16 = median(small_runs);
    h.socket_tput16 = median(socket_runs);
  }
  std::printf("raw round trips/s with 1/4/16 pairs: %.0f / %.0f / %.0f\n", h.sock_tput[1],
              h.sock_tput[4], h.sock_tput[16]);
  std::printf(
      "hit throughput with 1/4/16 clients: %.0f / %.0f / %.0f per s (4-tensor adapter, 16: "
      "%.0f; without lease slots, 16: %.0f)\n",
      h.tput[1], h.tput[4], h.tput[16], h.small_tput16, h.socket_tput16);
  std::fflush(stdout);
}

// Load + unload of a small adapter; nothing may grow.
ChurnFigures measure_churn(const Options& o, const Daemon& d1, Client& c, const Adapter& churn) {
  ChurnFigures r;
  r.cycles = o.churn_cycles;
  for (int i = 0; i < o.churn_warmup; ++i) {
    if (auto l = c.load(churn.name); !l) die("churn load: " + l.status().to_string());
    unload_or_die(c, churn.name);
  }
  r.before = snapshot(c, static_cast<pid_t>(c.daemon_pid()));
  const auto t0 = Clock::now();
  for (int i = 0; i < o.churn_cycles; ++i) {
    if (auto l = c.load(churn.name); !l) die("churn load: " + l.status().to_string());
    unload_or_die(c, churn.name);
    if ((i + 1) % std::max(1, o.churn_cycles / 10) == 0)
      r.rss_trace.push_back(proc_status(d1.pid, "VmRSS"));
  }
  r.rate = o.churn_cycles / seconds_since(t0);
  r.after = snapshot(c, static_cast<pid_t>(c.daemon_pid()));
  std::printf("churn: %.0f load+unload cycles/s\n", r.rate);
  return r;
}

// Many clients acquire one cold adapter at the same instant: one load.
DedupFigures measure_dedup(const Options& o, const Daemon& d1, Client& c, const Adapter& dedup) {
  DedupFigures r;
  r.clients = o.dedup_clients;
  std::vector<Client> clients;
  for (int i = 0; i < o.dedup_clients; ++i) clients.push_back(connect(d1));
  const std::uint64_t started_before = stat_u64(c, "loads_started");
  std::barrier start(o.dedup_clients);
  std::atomic<std::uint64_t> ok{0};
  std::vector<std::optional<Lease>> leases(static_cast<std::size_t>(o.dedup_clients));
  std::vector<std::thread> threads;
  std::atomic<std::int64_t> first_ns{INT64_MAX}, last_ns{0};
  for (int i = 0; i < o.dedup_clients; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      const auto b = Clock::now().time_since_epoch().count();
      auto lease = clients[static_cast<std::size_t>(i)].acquire(dedup.name);
      const auto e = Clock::now().time_since_epoch().count();
      std::int64_t cur = first_ns.load();
      while (b < cur && !first_ns.compare_exchange_weak(cur, b)) {
      }
      cur = last_ns.load();
      while (e > cur && !last_ns.compare_exchange_weak(cur, e)) {
      }
      if (lease) {
        ++ok;
        leases[static_cast<std::size_t>(i)].emplace(std::move(lease).value());
      } else {
        std::fprintf(stderr, "dedup acquire: %s\n", lease.status().to_string().c_str());
      }
    });
  }
  for (auto& t : threads) t.join();
  r.ms = static_cast<double>(last_ns - first_ns) / 1e6;
  r.loads = stat_u64(c, "loads_started") - started_before;
  r.ok = ok;
  leases.clear();
  clients.clear();
  std::printf("dedup: %llu of %d acquires succeeded with %llu load(s) in %.1f ms\n",
              static_cast<unsigned long long>(r.ok), o.dedup_clients,
              static_cast<unsigned long long>(r.loads), r.ms);
  return r;
}

// What genomed --workers 1 measures: every figure but the N-worker cold loads
// and the pressure run.
struct OneWorkerFigures {
  ColdFigures cold;
  HitFigures hits;
  ChurnFigures churn;
  DedupFigures dedup;
};

OneWorkerFigures measure_one_worker(const Options& o, const std::string& tmp,
                                    const std::string& root, const BenchAdapters& ad,
                                    const FrameSizes& frames, EchoPeer& echo, Json& j) {
  std::printf("\n== genomed --workers 1 ==\n");
  std::fflush(stdout);
  Daemon d1 = start_daemon(o, tmp, root, 1);
  OneWorkerFigures r;
  {
    Client c = connect(d1);
    r.cold = measure_cold(d1, c, ad, o.reps);
    {
      auto l = c.load(ad.hot.name);
      if (!l) die("load hot: " + l.status().to_string());
    }
    {
      auto l = c.load(ad.hot_small.name);
      if (!l) die("load hot-small: " + l.status().to_string());
    }
    Client by_request = connect(d1, /*slots=*/false);
    measure_hit_latency(o, d1, c, by_request, ad, echo, r.hits, j);
    measure_hit_throughput(o, d1, ad, frames, r.hits, j);
    r.churn = measure_churn(o, d1, c, ad.churn);
    r.dedup = measure_dedup(o, d1, c, ad.dedup);
  }
  stop_daemon(d1);
  j["arena_prefault_ms_w1"] = d1.prefault_ms;
  return r;
}

ColdFigures measure_n_workers(const Options& o, const std::string& tmp, const std::string& root,
                              const BenchAdapters& ad, Json& j) {
  std::printf("\n== genomed --workers %d ==\n", o.workers_n);
  std::fflush(stdout);
  Daemon dn = start_daemon(o, tmp, root, o.workers_n);
  ColdFigures r;
  {
    Client c = connect(dn);
    r = measure_cold(dn, c, ad, o.reps);
  }
  j["arena_prefault_ms_wN"] = dn.prefault_ms;
  stop_daemon(dn);
  return r;
}

// 100 concurrent cold acquires of 100 different adapters. The budget holds
// about a quarter of them. Every request should cause exactly one completed
// load and one copy of its bytes: a loaded entry evicted before its waiter
// leased it would be loaded again (before "published means leased", 569-643
// loads for 100 requests).
PressureFigures measure_pressure(const Options& o, const std::string& tmp) {
  PressureFigures r;
  const std::string proot = tmp + "/pressure-root";
  fs::create_directories(proot);
  for (int i = 0; i < kPressureClients; ++i)
    make_adapter(proot, "p" + std::to_string(i), "1m",
                 lora(64, 2, 1024, kQV, 1000 + static_cast<std::uint64_t>(i)));
  Options po = o;
  po.budget = 24ull << 20;
  std::printf("\n== pressure: %d cold acquires, budget %s ==\n", kPressureClients, "24M");
  std::fflush(stdout);
  Daemon dp = start_daemon(po, tmp, proot, o.workers_n, "-pressure");
  Client c = connect(dp);
  std::vector<Client> clients;
  for (int i = 0; i < kPressureClients; ++i) clients.push_back(connect(dp));
  std::barrier start(kPressureClients);
  std::atomic<std::uint64_t> ok{0}, asked{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kPressureClients; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto lease = clients[static_cast<std::size_t>(i)].acquire("p" + std::to_string(i));
      if (!lease) {
        std::fprintf(stderr, "pressure acquire: %s\n", lease.status().to_string().c_str());
        return;
      }
      ++ok;
      asked += lease->bytes().size();
    });  // each lease ends with its thread
  }
  for (auto& t : threads) t.join();
  r.ok = ok;
  r.loads_per_request = static_cast<double>(stat_u64(c, "loads_completed")) / kPressureClients;
  r.copies_per_byte =
      static_cast<double>(stat_u64(c, "bytes_loaded")) / static_cast<double>(asked.load());
  std::printf(
      "pressure: %llu of %d succeeded; %.2f loads and %.2f copies of the asked bytes "
      "per request (%llu evictions)\n",
      static_cast<unsigned long long>(r.ok), kPressureClients, r.loads_per_request,
      r.copies_per_byte, static_cast<unsigned long long>(stat_u64(c, "evictions")));
  clients.clear();
  stop_daemon(dp);
  return r;
}

// ---- cold from disk (issue 24) ----

// Loads that find nothing in the page cache (after a node restart, under
// memory pressure), against what the device gives the same file at best.
namespace cold = genomed::bench;

constexpr const char* kPythonLoaders[] = {"load_file", "fastsafetensors"};

// Each Python loader on each cold file, `reps` cold samples, median.
void measure_python_loaders(const Options& o, int reps, DiskFigures& r) {
  const std::string script = std::string(GENOMED_BENCH_DIR) + "/cold_python_load.py";
  for (const std::string loader : kPythonLoaders) {
    for (const Adapter& a : r.adapters) {
      std::vector<double> gbps;
      for (int i = 0; i < reps; ++i) {
        auto g = cold::python_cold_load_gbps(o.python, script, loader, a.weights);
        if (!g) {
          r.python_skipped[loader] = g.status().message();
          std::printf("python %s: skipped: %s\n", loader.c_str(), g.status().message().c_str());
          break;
        }
        gbps.push_back(*g);
      }
      if (r.python_skipped.count(loader) != 0) break;
      r.python[loader][a.label] = median(gbps);
      std::printf("python %-15s %-5s cold: %.3f GB/s\n", loader.c_str(), a.label.c_str(),
                  median(gbps));
      std::fflush(stdout);
    }
  }
}

// Each size's adapter on a real disk; before every sample its files are
// dropped from the page cache (bench/cold_load.h) and the sample dies loudly
// if a page stays. genomed --workers 1, then --workers N, against the
// device's best parallel O_DIRECT read of the same file, also cold.
DiskFigures measure_cold_from_disk(const Options& o, const std::string& tmp) {
  std::printf("\n== cold from disk: the adapter's files dropped from the page cache ==\n");
  std::fflush(stdout);
  DiskFigures r;
  r.dir = make_cold_scratch(o.cold_dir, o.keep_tmp, &r.skipped);
  if (r.dir.empty()) {
    std::printf("skipped: no directory for cold files: %s\n", r.skipped.c_str());
    return r;
  }
  const std::string root = r.dir + "/adapters";
  // Shaped as the warm ones: F16, hidden 4096, q+v, 32 KiB per rank x layer.
  for (const std::uint64_t mib : o.cold_mib) {
    const std::uint32_t layers = mib >= 128 && mib % 2 == 0 ? 64 : 8;
    const auto rank = static_cast<std::uint32_t>(mib * 32 / layers);
    const std::string label = std::to_string(mib) + "m";
    r.adapters.push_back(make_adapter(root, "disk-" + label, label,
                                      lora(rank, layers, 4096, kQV, 2400 + mib)));
  }
  for (const Adapter& a : r.adapters) {
    // The search only picks the shape (2 samples each keep it short on a slow
    // disk); the ratios' baseline is that shape read alternately below.
    auto best = cold::device_best_read(a.weights, std::min(o.reps, 2));
    if (!best) die("device read of " + a.weights + ": " + best.status().to_string());
    r.device[a.label] = best->gbps;
    r.device_shape[a.label] = best->shape;
    std::printf("device best O_DIRECT read %-5s: %.3f GB/s (%s)\n", a.label.c_str(), best->gbps,
                shape_name(best->shape).c_str());
  }
  measure_python_loaders(o, o.reps, r);
  for (const int workers : {1, o.workers_n}) {
    Daemon d = start_daemon(o, tmp, root, workers, "-cold");
    {
      Client c = connect(d);
      for (const Adapter& a : r.adapters) {
        const std::string dir = root + "/" + a.name;
        std::vector<double> device;
        const ColdResult cr = cold_loads(c, a, o.reps, [&] {
          auto g = cold::direct_read_gbps(a.weights, r.device_shape[a.label]);
          if (!g) die("device read of " + a.weights + ": " + g.status().to_string());
          device.push_back(*g);
          if (auto s = cold::drop_dir_from_page_cache(dir); !s.ok())
            die("cold-from-disk sample of " + a.name + ": " + s.to_string());
        });
        (workers == 1 ? r.w1 : r.wn)[a.label] = cr.median_gbps;
        (workers == 1 ? r.device_w1 : r.device_wn)[a.label] = median(device);
        std::printf(
            "cold from disk %-5s --workers %d: median %.3f GB/s (device, alternating: %.3f GB/s)\n",
            a.label.c_str(), workers, cr.median_gbps, median(device));
        std::fflush(stdout);
      }
    }
    stop_daemon(d);
  }
  remove_cold_scratch(r.dir, o.keep_tmp);
  return r;
}

// The full run: baselines, genomed with one worker and with N, the pressure
// run, then the table of figures against their baselines and targets.
int run_full(const Options& o, const std::string& tmp, const std::string& root,
             Clock::time_point run_start) {
  Json j;
  j["mode"] = o.quick ? "quick" : "full";
  j["workers_n"] = o.workers_n;
  j["reps"] = o.reps;
  j["hit_iterations"] = o.hit_iterations;

  const BenchAdapters ad = generate_adapters(root);
  const FrameSizes frames = measure_frames(ad.hot.name);
  EchoPeer echo = start_echo_peer(frames);  // before any thread exists

  const Baselines base = measure_baselines(o, ad.sizes, frames, j);
  const OneWorkerFigures w1 = measure_one_worker(o, tmp, root, ad, frames, echo, j);
  const ColdFigures coldn = measure_n_workers(o, tmp, root, ad, j);
  const PressureFigures pressure = measure_pressure(o, tmp);
  const DiskFigures disk = measure_cold_from_disk(o, tmp);

  std::vector<Row> rows;
  cold_rows(ad, base, w1.cold, coldn, rows, j);
  hit_rows(w1.hits, rows, j);
  const ChurnVerdict churn = churn_rows(w1.churn, rows, j);
  dedup_and_pressure_rows(w1.dedup, pressure, rows, j);
  disk_rows(disk, rows, j);

  const double total_s = seconds_since(run_start);
  j["run_seconds"] = total_s;
  print_table(rows);
  print_verdict(o.quick, rows, w1.churn, churn, w1.dedup, disk, total_s, j);

  if (!o.json_path.empty() && !write_json(o.json_path, j)) die("cannot write " + o.json_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_options(argc, argv);
  if (::access(o.genomed.c_str(), X_OK) != 0)
    die("no genomed executable at " + o.genomed + " (see --genomed)");
  // Large mallocs always come from fresh mmap'ed pages (glibc would otherwise
  // raise its threshold after the first free and recycle the heap), so the
  // in-process loader pays page allocation on every load, as a real one does.
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
  ::signal(SIGPIPE, SIG_IGN);
  const auto run_start = Clock::now();

  char tmpl[] = "/tmp/genome-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) die("mkdtemp");
  const std::string tmp = tmpl;
  if (!o.keep_tmp) remove_on_failure(Scratch::tmp, tmp);
  const std::string root = tmp + "/adapters";
  struct Cleanup {
    std::string dir;
    bool keep;
    ~Cleanup() {
      if (keep) {
        std::printf("kept %s\n", dir.c_str());
        return;
      }
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{tmp, o.keep_tmp};
  if (!o.profile_cold.empty() || !o.profile_hit.empty()) return run_profile(o, tmp, root);
  if (o.throughput_rounds > 0) return run_throughput_only(o, tmp, root);
  return run_full(o, tmp, root, run_start);
}
