// One request of a connection that said HELLO -> the coordinator call it
// names -> its encoded reply. Here are the request-level policies of the
// connection layer: the drain after SIGTERM refuses LOAD, ACQUIRE and PIN and
// makes HEALTH unhealthy, ACQUIRE's latency is observed and its refusals at
// the lease limit counted, STATS appends the connections' counters to the
// coordinator's, and no reply past the protocol's frame limit goes out.
//
// A function, no state and no lock of its own: it runs on the request thread
// serving the connection (loader/connection.h), without the connection's
// lock, and may block inside the coordinator (a load, room in the budget),
// telling `wait` first.
#pragma once

#include <memory>
#include <string>

#include "ipc/protocol.h"
#include "loader/connection_context.h"
#include "loader/frame_io.h"
#include "loader/lease_slots.h"

namespace genomed::loader {

// The connection a request came on.
struct RequestSource {
  ConnectionId id = 0;
  int socket = -1;  // its socket, whose peer's credentials PUBLISH checks
  // The descriptors that came with the request's frame (PUBLISH only; may
  // be null): dispatch takes them.
  FrameFds* fds = nullptr;
  // Told before the request blocks inside the coordinator (may be null).
  WaitHook* wait = nullptr;
  // Its page of lease slots (null: none), for ACQUIRE.
  std::shared_ptr<LeaseSlotPage> slot_page;
  // Warnings about its client pass this (its LogLimiter; empty: none written).
  WarnGate may_warn;
};

// The reply to `req` (framed by the caller; "" for RELEASE, which has none).
// Errors of the coordinator are encoded as error replies; so is a second
// HELLO (bad_request).
std::string dispatch(const ipc::Request& req, const ConnectionContext& ctx,
                     const RequestSource& from);

// The reply to STATS: the coordinator's counters, then the connections'.
ipc::StatsReply stats_reply(const ConnectionContext& ctx);

}  // namespace genomed::loader
