// What clients sent that the daemon refused or ignored, over all their
// connections: reported by STATS after the coordinator's counters
// (docs/protocol.md, "stats"), so an operator sees a misbehaving client in
// the numbers even when its log lines are held back (log_limiter.h).
// Atomic: every request thread counts.
#pragma once

#include <atomic>
#include <cstdint>

#include "ipc/protocol.h"

namespace genomed::loader {

struct ConnectionCounters {
  // Frames refused as requests: not msgpack, unknown op, a missing or
  // mistyped field, an adapter name that is not UTF-8, a second HELLO.
  std::atomic<std::uint64_t> bad_requests{0};
  // Lease ids in RELEASEs that named no lease of their connection.
  std::atomic<std::uint64_t> releases_ignored{0};
  // Requests refused with limit_exceeded (leases per connection, reply size).
  std::atomic<std::uint64_t> limits_exceeded{0};
  // Clients refused at HELLO: their credentials match no --allow-uid /
  // --allow-gid (loader/access_control.h).
  std::atomic<std::uint64_t> permission_denied{0};
  // Log lines a client caused that were not written: held back by its
  // connection's LogLimiter or by the daemon's allowance for client lines
  // (loader/client_log.h).
  std::atomic<std::uint64_t> log_lines_suppressed{0};
  // Idle connections holding no lease closed to make room for a new client
  // at --max-connections (Server::make_room).
  std::atomic<std::uint64_t> connections_evicted{0};

  void append_to(ipc::StatsReply& stats) const {
    const auto put = [&](const char* key, const std::atomic<std::uint64_t>& n) {
      stats.values.emplace_back(key, n.load(std::memory_order_relaxed));
    };
    put("bad_requests", bad_requests);
    put("releases_ignored", releases_ignored);
    put("limits_exceeded", limits_exceeded);
    put("log_lines_suppressed", log_lines_suppressed);
    put("permission_denied", permission_denied);
    put("connections_evicted", connections_evicted);
  }
};

}  // namespace genomed::loader
