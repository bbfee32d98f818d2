// What every connection of the server shares: its limits (ConnectionLimits)
// and the daemon's parts it serves requests with (ConnectionContext). Read
// by the connection (loader/connection.h), its HELLO (loader/handshake.h)
// and its request dispatch (loader/request_dispatch.h); made once by main
// and constant after; the shared parts lock themselves.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ipc/protocol.h"
#include "loader/access_control.h"
#include "loader/connection_counters.h"
#include "loader/coordinator.h"
#include "loader/drain.h"
#include "loader/log_limiter.h"

namespace genomed::loader {

// How long a connection may keep the daemon waiting, and how many it serves.
// No thread waits for a slow client, but a client that never says HELLO, or
// never reads its replies, would otherwise hold its descriptor, its buffered
// replies and its leases for ever.
struct ConnectionLimits {
  std::chrono::milliseconds handshake_timeout{5'000};  // connect -> HELLO received
  std::chrono::milliseconds idle_timeout{
      0};  // between requests; 0: never (leases may be long-lived)
  std::chrono::milliseconds write_timeout{10'000};  // a reply the client does not read
  // At it a new client takes the place of an idle connection without
  // leases (Server::make_room), or is refused with `overloaded`.
  std::size_t max_connections = 1024;
  // Connections one uid may hold (0: no limit of its own). Connections
  // holding leases are never closed for room, so without it one uid that
  // holds a lease on each of max_connections keeps every other uid out.
  // At it a new client of that uid takes the place of an idle connection
  // of its own without leases, or is refused with `overloaded`.
  // parse_command_line defaults it to default_max_connections_per_uid.
  std::size_t max_connections_per_uid = 768;
  // Requests of one connection read ahead of the one being served. With
  // this many queued its socket is not read until one is answered (its
  // writes then block): a client cannot make the daemon buffer without
  // bound. RELEASEs are applied when read and never count. Each queued
  // request holds at most one request frame (ipc::kMaxRequestFrame), so
  // a connection queues at most 1 MiB by default. The client libraries send
  // one request at a time.
  std::size_t max_pipelined_requests = 16;
  // Lease slots offered to each client that asks in HELLO (docs/protocol.md,
  // "Lease slots"); 0: none, every lease is a request.
  std::size_t lease_slots = ipc::kLeaseSlotsPerConnection;
  // Warnings one connection may cause (LogLimiter); not flags.
  LogLimiter::Options warnings;
  // Request threads at most (RequestThreads): more than the cores start
  // only while every one waits inside a request (a load, room in the
  // budget). 0: max_connections plus the cores, which can never run out (a
  // connection has one request running at a time) so a RELEASE or a hang-up
  // is always read at once; a lower cap bounds threads but, once that many
  // requests wait at once, other clients wait until one returns.
  int max_request_threads = 0;
};

struct ConnectionContext {
  Coordinator* coordinator = nullptr;
  int arena_ro_fd = -1;
  std::uint64_t arena_bytes = 0;
  std::string server_version;
  ConnectionLimits limits;
  // Shared by every connection (and every copy of the context).
  std::shared_ptr<ConnectionCounters> counters = std::make_shared<ConnectionCounters>();
  // Socket mode and group, and the peers served (null: owner-only socket, every peer).
  std::shared_ptr<AccessControl> access;
  // The drain after SIGTERM: LOAD/ACQUIRE refused, HEALTH draining, lease
  // ends reported (null: none).
  std::shared_ptr<Drain> drain;
  // Acquire latencies, for the metrics endpoint (null: not kept).
  std::shared_ptr<DaemonHistograms> histograms;
};

// Whether a warning about one client may be written now (its connection's
// LogLimiter); counts it as suppressed if not. When it may, `*note` is "" or
// says how many were held back before it, to end the line with.
using WarnGate = std::function<bool(std::string* note)>;

}  // namespace genomed::loader
