// One client connection: the HELLO exchange (which passes the read-only arena
// descriptor), then requests until the client leaves. Runs on its own thread.
// A malformed frame closes this connection only; every lease the connection
// held ends when it closes, however it closes, or as soon as its client hangs
// up while a request of it waits (HangupWatcher).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "loader/coordinator.h"
#include "loader/hangup_watcher.h"

namespace genomed::loader {

// How long a connection may keep the daemon waiting. A thread serves each
// connection, so a client that never says HELLO, or never reads its replies,
// would otherwise hold that thread (and its leases) for ever.
struct ConnectionLimits {
  std::chrono::milliseconds handshake_timeout{5'000};  // connect -> HELLO received
  std::chrono::milliseconds idle_timeout{
      0};  // between requests; 0: never (leases may be long-lived)
  std::chrono::milliseconds write_timeout{10'000};  // a reply the client does not read
  std::size_t max_connections = 1024;  // beyond it a client gets `overloaded` and is closed
};

struct ConnectionContext {
  Coordinator* coordinator = nullptr;
  int arena_ro_fd = -1;
  std::uint64_t arena_bytes = 0;
  std::string server_version;
  ConnectionLimits limits;
  // Watches a connection while its request waits (set by the Server); null:
  // a hang-up is noticed only when the request ends.
  HangupWatcher* watcher = nullptr;
};

// Serves `fd` until EOF, a socket error, a protocol violation or a limit of
// ctx.limits. Does not close fd (the server's connection thread does, under
// the server's lock).
void serve_connection(int fd, ConnectionId id, const ConnectionContext& ctx);

}  // namespace genomed::loader
