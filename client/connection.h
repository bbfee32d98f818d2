// One client connection: what a Client and its Leases share. Wires the parts
// together: the transport (socket and deadlines), the arena mapping, the
// lease-slot cache, the parsed-header cache and the fork guard. Kept alive
// by the Client and by every Lease taken from it, so a Lease outliving its
// Client still releases through the same socket.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "client/fork_guard.h"
#include "client/header_cache.h"
#include "client/slot_cache.h"
#include "client/transport.h"
#include "genomed/client.h"

namespace genomed::client_detail {

struct Connection {
  Connection(const ClientOptions& options, std::unique_ptr<Transport> transport);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // In a child of fork() of the process that connected: nothing is sent,
  // read, shut down or given back, and every request fails.
  bool foreign() const { return transport->fork().foreign(); }

  // Sends RELEASE of `lease` (one-way; nothing in a child of fork()).
  void release(std::uint64_t lease);
  // Gives back a lease taken through a slot; sends RELEASE when the daemon
  // wanted the slot back and this was its last lease, or when the slot is
  // not as this client left it. REQUIRES: slots.
  void give_back(std::uint32_t index, std::uint32_t tag, std::uint64_t lease);

  // Every member is set by connect() before the Connection is shared, and
  // constant from then on (the parts lock their own state).
  const ClientOptions options;
  const std::unique_ptr<Transport> transport;  // never null
  std::unique_ptr<SlotCache> slots;            // null: no lease slots
  HeaderCache headers;
  const std::byte* arena = nullptr;  // PROT_READ mapping of the whole arena
  std::uint64_t arena_bytes = 0;
  std::uint64_t daemon_pid = 0;
  std::string server;  // the daemon's version string from HELLO ("genomed 0.1.0")
};

// What a Lease holds.
struct LeaseState {
  std::shared_ptr<Connection> conn;
  std::string name;
  std::uint64_t id = 0;
  std::uint64_t generation = 0;
  std::shared_ptr<const ParsedAdapter> adapter;
  bool released = false;
  // Taken through this slot of the connection's page (given back there).
  std::optional<std::uint32_t> slot;
  std::uint32_t slot_tag = 0;
};

}  // namespace genomed::client_detail
