// The operator-facing settings of genomed beyond loading adapters: who may
// connect (access control), the log format and the client lines' rate, the
// graceful drain on SIGTERM and the Prometheus endpoint. Parsed by
// loader/ops_config.cc, documented in docs/operations.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "loader/access_control.h"

namespace genomed::loader {

enum class LogFormat { text, json };

struct OperationsOptions {
  AccessOptions access;  // --socket-mode, --socket-group, --allow-uid, --allow-gid
  LogFormat log_format = LogFormat::text;  // --log-format
  // --client-log-rate: bytes per second of log lines clients' actions may
  // cause, all connections together (loader/client_log.h); 64 KiB/s is
  // 5.4 GiB a day at worst, and holds about 300 ordinary lines a second.
  std::uint64_t client_log_rate = 64 * 1024;
  // --drain-timeout: after SIGTERM, how long outstanding leases may keep the
  // daemon serving (no new loads or leases) before it stops anyway. Below
  // systemd's default TimeoutStopSec (90s) with room for the rest of the stop.
  std::chrono::milliseconds drain_timeout{10'000};
  // --metrics-listen HOST:PORT; "" = no metrics endpoint.
  std::string metrics_listen;
  // --metrics-request-timeout: a metrics connection's whole life, from accept
  // to close (loader/metrics_server.h). Prometheus's default scrape timeout
  // is 10s too.
  std::chrono::milliseconds metrics_request_timeout{10'000};
};

}  // namespace genomed::loader
