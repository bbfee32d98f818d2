// One client connection: the HELLO exchange (which passes the read-only arena
// descriptor), then requests until the client leaves. Runs on its own thread.
// A malformed frame closes this connection only; every lease the connection
// held ends when it closes, however it closes.
#pragma once

#include <cstdint>
#include <string>

#include "loader/coordinator.h"

namespace genomed::loader {

struct ConnectionContext {
  Coordinator* coordinator = nullptr;
  int arena_ro_fd = -1;
  std::uint64_t arena_bytes = 0;
  std::string server_version;
};

// Serves `fd` until EOF, a socket error or a protocol violation. Does not
// close fd (the server's connection thread does, under the server's lock).
void serve_connection(int fd, ConnectionId id, const ConnectionContext& ctx);

}  // namespace genomed::loader
