// --metrics-listen HOST:PORT: serves GET /metrics in the Prometheus text
// format, written by prometheus-cpp's core (TextSerializer) and served by
// loader/metrics_server.h (our own HTTP: one thread, deadlines, limits). Every
// scrape reads the same numbers STATS returns (the coordinator's and the
// connections' counters) and the daemon's latency histograms; nothing is
// kept twice, so a scrape and a STATS agree. prometheus-cpp is included in
// this file's .cc only.
//
// Names: genomed_<stat>, counters with the suffix _total (every stat that
// only grows: loads_started, hits, bad_requests, ...), every other numeric
// stat as a gauge, breaker_state as genomed_breaker_state{state="..."} 1/0,
// and the histograms genomed_load_duration_seconds,
// genomed_acquire_latency_seconds, genomed_admission_wait_seconds.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "ipc/protocol.h"
#include "loader/latency_histogram.h"
#include "loader/metrics_server.h"

namespace genomed::loader {

class MetricsExporter {
 public:
  using StatsSource = std::function<ipc::StatsReply()>;

  // Binds `listen` ("HOST:PORT"; port 0 picks a free one) and serves until
  // destroyed. environment if it cannot bind.
  static Result<std::unique_ptr<MetricsExporter>> start(
      const std::string& listen, StatsSource stats, std::shared_ptr<DaemonHistograms> histograms,
      MetricsServerOptions options = {});
  ~MetricsExporter();

  // "http://127.0.0.1:9464/metrics", with the port actually bound.
  const std::string& url() const { return url_; }

 private:
  struct Impl;
  explicit MetricsExporter(std::unique_ptr<Impl> impl, std::string url);
  std::unique_ptr<Impl> impl_;
  std::string url_;
};

}  // namespace genomed::loader
