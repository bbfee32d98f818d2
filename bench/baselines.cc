#include "baselines.h"

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "ipc/protocol.h"
#include "run_cleanup.h"
#include "worker/format/pread_full.h"
#include "worker/format/safetensors.h"

namespace genomed::bench {
namespace {

// Keeps the median aggregate of every benchmark (bytes/s), and prints as usual.
class CaptureReporter : public benchmark::ConsoleReporter {
 public:
  CaptureReporter() : benchmark::ConsoleReporter(OO_Tabular) {}  // no colour codes
  std::map<std::string, double> bytes_per_second;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Aggregate || r.aggregate_name != "median") continue;
      const auto it = r.counters.find("bytes_per_second");
      if (it != r.counters.end()) bytes_per_second[r.run_name.function_name] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

// What an inference server does without genomed (safetensors load_file):
// parse the header, allocate fresh memory, read the data into it.
void inprocess_load(benchmark::State& state, std::string path) {
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    auto header = genomed::format::read_safetensors_header(fd, path);
    if (!header) die("header: " + header.status().to_string());
    void* buf =
        std::malloc(header->data_size);  // fresh mmap'ed pages: see M_MMAP_THRESHOLD in main
    if (buf == nullptr) die("malloc");
    if (genomed::format::pread_full(fd, buf, header->data_size, header->data_offset) !=
        static_cast<long long>(header->data_size)) {
      die("short read of " + path);
    }
    ::close(fd);
    benchmark::DoNotOptimize(buf);
    bytes += header->data_offset + header->data_size;
    state.PauseTiming();  // the load ends when the bytes are usable; freeing is later
    std::free(buf);
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

// mmap the file and read every byte once (sum of 64-bit words).
void inprocess_mmap(benchmark::State& state, std::string path) {
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) die("open " + path);
    const auto size = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) die("mmap " + path);
    ::close(fd);
    const auto* w = static_cast<const std::uint64_t*>(p);
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < size / 8; ++i) sum += w[i];
    benchmark::DoNotOptimize(sum);
    bytes += size;
    state.PauseTiming();
    ::munmap(p, size);
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

void memcpy_warm(benchmark::State& state, std::size_t size) {
  std::vector<char> src(size, 1), dst(size, 2);  // both written: every page faulted
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), size);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t got = ::write(fd, p, n);
    if (got < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

bool read_all(int fd, char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t got = ::read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

// The echo side: reads a request, answers with a reply, until EOF.
void echo_loop(int fd, std::size_t request, std::size_t reply) {
  std::vector<char> in(request), out(reply, 'r');
  while (read_all(fd, in.data(), request) && write_all(fd, out.data(), reply)) {
  }
}

// Forks an echo process serving `fds` with one blocking thread per pair (the
// cheapest server there is for a few busy connections). Closes the child's
// ends in the parent.
pid_t fork_echo_server(const std::vector<std::array<int, 2>>& pairs, const FrameSizes& f) {
  const pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    std::vector<std::thread> threads;
    for (const auto& p : pairs) {
      ::close(p[0]);
      threads.emplace_back([fd = p[1], &f] { echo_loop(fd, f.acquire_request, f.acquire_reply); });
    }
    for (auto& t : threads) t.join();
    std::_Exit(0);
  }
  for (const auto& p : pairs) ::close(p[1]);
  return pid;
}

std::vector<std::array<int, 2>> socket_pairs(int n) {
  std::vector<std::array<int, 2>> pairs(static_cast<std::size_t>(n));
  for (auto& p : pairs) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
    p = {sv[0], sv[1]};
  }
  return pairs;
}

}  // namespace

std::map<std::string, double> run_micro_benchmarks(const Options& o,
                                                   const std::vector<Adapter>& sizes) {
  static const bool initialized = [] {
    int argc = 2;
    char arg0[] = "genome-bench";
    char arg1[] = "--benchmark_color=false";
    char* argv[] = {arg0, arg1, nullptr};
    benchmark::Initialize(&argc, argv);
    return true;
  }();
  (void)initialized;
  const int reps = std::max(o.reps, 2);  // Google Benchmark aggregates need >= 2
  benchmark::RegisterBenchmark("memcpy_256m", memcpy_warm, std::size_t{256} << 20)
      ->Iterations(4)
      ->Repetitions(reps)
      ->ReportAggregatesOnly(true)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  for (const Adapter& a : sizes) {
    const auto iters = static_cast<benchmark::IterationCount>(
        std::max<std::uint64_t>(1, (256ull << 20) / a.bytes));
    benchmark::RegisterBenchmark(("inprocess_load_" + a.label).c_str(), inprocess_load, a.weights)
        ->Iterations(iters)
        ->Repetitions(reps)
        ->ReportAggregatesOnly(true)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("inprocess_mmap_" + a.label).c_str(), inprocess_mmap, a.weights)
        ->Iterations(iters)
        ->Repetitions(reps)
        ->ReportAggregatesOnly(true)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  CaptureReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::ClearRegisteredBenchmarks();
  return reporter.bytes_per_second;
}

// Measured by encoding the frames the client and daemon exchange for one
// acquire of `name` (representative lease id, offset, length, generation).
FrameSizes measure_frames(const std::string& name) {
  namespace ipc = genomed::ipc;
  FrameSizes f;
  ipc::Request acquire;
  acquire.op = ipc::Op::acquire;
  acquire.names = {name};
  f.acquire_request = 4 + ipc::encode_request(acquire).size();
  ipc::AcquireReply reply;
  reply.grants.push_back(ipc::LeaseGrant{name, 123456, 700ull << 20, 32ull << 20, 12});
  f.acquire_reply = 4 + ipc::encode_reply(reply).size();
  ipc::Request release;
  release.op = ipc::Op::release;
  release.leases = {123456};
  f.release_request = 4 + ipc::encode_request(release).size();
  return f;
}

void end_echo_server(const std::vector<std::array<int, 2>>& pairs, pid_t pid) {
  for (const auto& p : pairs) ::close(p[0]);  // EOF ends the echo threads
  int status = 0;
  ::waitpid(pid, &status, 0);
}

EchoPeer start_echo_peer(const FrameSizes& f) {
  EchoPeer e;
  e.pairs = socket_pairs(1);
  e.pid = fork_echo_server(e.pairs, f);
  e.out.assign(f.acquire_request, 'q');
  e.in.resize(f.acquire_reply);
  return e;
}

// Appends `iterations` round-trip times (microseconds) after `warmup` untimed ones.
void socket_rtt_block(EchoPeer& e, int warmup, int iterations, std::vector<double>& us) {
  const int fd = e.pairs[0][0];
  for (int i = -warmup; i < iterations; ++i) {
    const auto t0 = Clock::now();
    if (!write_all(fd, e.out.data(), e.out.size()) || !read_all(fd, e.in.data(), e.in.size())) {
      die("ping-pong failed");
    }
    if (i >= 0) us.push_back(seconds_since(t0) * 1e6);
  }
}

// Runs `op(thread_index)` in `threads` threads for `seconds`; returns ops/s.
// `op` returns false on failure (the run then dies).
double run_for(int threads, double seconds, const std::function<bool(int)>& op) {
  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(threads), 0);
  std::barrier start(threads + 1);
  std::vector<std::thread> pool;
  std::atomic<bool> failed{false};
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!op(t)) {
          failed = true;
          break;
        }
        ++n;
      }
      counts[static_cast<std::size_t>(t)] = n;
    });
  }
  start.arrive_and_wait();
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  const double elapsed = seconds_since(t0);
  for (auto& th : pool) th.join();
  if (failed) die("an operation failed during a throughput run");
  std::uint64_t total = 0;
  for (auto c : counts) total += c;
  return static_cast<double>(total) / elapsed;
}

double socket_throughput(const FrameSizes& f, int pairs_count, double seconds) {
  auto pairs = socket_pairs(pairs_count);
  const pid_t pid = fork_echo_server(pairs, f);
  std::vector<std::vector<char>> out(pairs.size(), std::vector<char>(f.acquire_request, 'q'));
  std::vector<std::vector<char>> in(pairs.size(), std::vector<char>(f.acquire_reply));
  const double ops = run_for(pairs_count, seconds, [&](int t) {
    const auto i = static_cast<std::size_t>(t);
    return write_all(pairs[i][0], out[i].data(), out[i].size()) &&
           read_all(pairs[i][0], in[i].data(), in[i].size());
  });
  end_echo_server(pairs, pid);
  return ops;
}

}  // namespace genomed::bench
