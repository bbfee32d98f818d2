#include "loader/metrics_exporter.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <limits>
#include <set>
#include <variant>
#include <vector>

namespace genomed::loader {
namespace {

// Stats that only grow (Prometheus counters); every other numeric stat is a
// gauge, so a stat added later is never wrongly promised to be monotonic.
const std::set<std::string>& counter_stats() {
  static const std::set<std::string> kCounters = {"loads_started",
                                                  "loads_completed",
                                                  "loads_failed",
                                                  "loads_cancelled",
                                                  "hits",
                                                  "misses",
                                                  "evictions",
                                                  "bytes_loaded",
                                                  "request_restarts",
                                                  "leases_granted",
                                                  "slot_hits",
                                                  "lease_slot_violations",
                                                  "worker_restarts",
                                                  "worker_crashes",
                                                  "worker_timeouts",
                                                  "load_retries",
                                                  "breaker_transitions",
                                                  "bad_requests",
                                                  "releases_ignored",
                                                  "limits_exceeded",
                                                  "log_lines_suppressed",
                                                  "permission_denied",
                                                  "connections_evicted",
                                                  "idle_unloads",
                                                  "prefetches_dropped",
                                                  "loads_shared"};
  return kCounters;
}

prometheus::MetricFamily histogram_family(const std::string& name, const std::string& help,
                                          const LatencyHistogram& h) {
  const LatencyHistogram::Snapshot snap = h.snapshot();
  prometheus::ClientMetric m;
  m.histogram.sample_count = snap.cumulative.back();
  m.histogram.sample_sum = snap.sum_seconds;
  for (std::size_t i = 0; i < LatencyHistogram::kBounds.size(); ++i) {
    m.histogram.bucket.push_back({snap.cumulative[i], LatencyHistogram::kBounds[i]});
  }
  m.histogram.bucket.push_back({snap.cumulative.back(), std::numeric_limits<double>::infinity()});
  return {name, help, prometheus::MetricType::Histogram, {m}};
}

class StatsCollector {
 public:
  StatsCollector(MetricsExporter::StatsSource stats, std::shared_ptr<DaemonHistograms> h)
      : stats_(std::move(stats)), histograms_(std::move(h)) {}

  std::vector<prometheus::MetricFamily> collect() const {
    std::vector<prometheus::MetricFamily> families;
    for (const auto& [key, value] : stats_().values) {
      if (const auto* text = std::get_if<std::string>(&value)) {
        // breaker_state: one series per state, 1 for the current one.
        prometheus::MetricFamily f{"genomed_" + key,
                                   "STATS " + key + " (1: the current one)",
                                   prometheus::MetricType::Gauge,
                                   {}};
        for (const char* state : {"closed", "open", "half_open"}) {
          prometheus::ClientMetric m;
          m.label.push_back({"state", state});
          m.gauge.value = *text == state ? 1 : 0;
          f.metric.push_back(m);
        }
        families.push_back(std::move(f));
        continue;
      }
      const double v = static_cast<double>(std::get<std::uint64_t>(value));
      prometheus::ClientMetric m;
      if (counter_stats().contains(key)) {
        m.counter.value = v;
        families.push_back({"genomed_" + key + "_total",
                            "STATS " + key + " (docs/protocol.md)",
                            prometheus::MetricType::Counter,
                            {m}});
      } else {
        m.gauge.value = v;
        families.push_back({"genomed_" + key,
                            "STATS " + key + " (docs/protocol.md)",
                            prometheus::MetricType::Gauge,
                            {m}});
      }
    }
    if (histograms_) {
      families.push_back(histogram_family("genomed_load_duration_seconds",
                                          "Successful loads, start to READY",
                                          histograms_->load_seconds));
      families.push_back(histogram_family("genomed_acquire_latency_seconds",
                                          "ACQUIRE requests, read to answered",
                                          histograms_->acquire_seconds));
      families.push_back(histogram_family("genomed_admission_wait_seconds",
                                          "Waits for room in the budget, queued to served",
                                          histograms_->admission_wait_seconds));
    }
    return families;
  }

 private:
  const MetricsExporter::StatsSource stats_;
  const std::shared_ptr<DaemonHistograms> histograms_;
};

}  // namespace

struct MetricsExporter::Impl {
  std::unique_ptr<MetricsServer> server;
};

Result<std::unique_ptr<MetricsExporter>> MetricsExporter::start(
    const std::string& listen, StatsSource stats, std::shared_ptr<DaemonHistograms> histograms,
    MetricsServerOptions options) {
  auto impl = std::make_unique<Impl>();
  // prometheus-cpp's core only writes the text format; the HTTP is
  // loader/metrics_server.h's.
  auto render = [collector = StatsCollector(std::move(stats), std::move(histograms))] {
    return prometheus::TextSerializer().Serialize(collector.collect());
  };
  GENOMED_ASSIGN_OR_RETURN(impl->server,
                           MetricsServer::start(listen, std::move(render), options));
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::string url = "http://" + host + ":" + std::to_string(impl->server->port()) + "/metrics";
  return std::unique_ptr<MetricsExporter>(new MetricsExporter(std::move(impl), std::move(url)));
}

MetricsExporter::MetricsExporter(std::unique_ptr<Impl> impl, std::string url)
    : impl_(std::move(impl)), url_(std::move(url)) {}

MetricsExporter::~MetricsExporter() = default;

}  // namespace genomed::loader
