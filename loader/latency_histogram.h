// Durations the daemon measures for its Prometheus histograms (load
// duration, acquire latency, admission wait: loader/metrics_exporter.h):
// fixed buckets, lock-free, cheap enough for every request. Observed by the
// coordinator and the connections; read at each scrape.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace genomed::loader {

class LatencyHistogram {
 public:
  // Upper bounds in seconds, from a cache hit (well under 1 ms) to a fill
  // of many GiB; the last bucket (+Inf) is implied.
  static constexpr std::array<double, 16> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

  void observe(std::chrono::steady_clock::duration d) {
    const double seconds = std::chrono::duration<double>(d).count();
    std::size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()),
        std::memory_order_relaxed);
  }

  struct Snapshot {
    std::array<std::uint64_t, kBounds.size() + 1> cumulative{};  // last: +Inf = count
    double sum_seconds = 0;
  };
  Snapshot snapshot() const {
    Snapshot s;
    std::uint64_t running = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      running += counts_[i].load(std::memory_order_relaxed);
      s.cumulative[i] = running;
    }
    s.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return s;
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

struct DaemonHistograms {
  LatencyHistogram load_seconds;            // a load's flight, start to READY (successful loads)
  LatencyHistogram acquire_seconds;         // an ACQUIRE request, read to answered (any outcome)
  LatencyHistogram admission_wait_seconds;  // a request's wait for room in the budget
};

}  // namespace genomed::loader
