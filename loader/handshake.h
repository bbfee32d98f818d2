// HELLO, the first frame of every connection: the client's protocol version
// is checked and it is told the daemon's version, the arena's size and its
// pid; the arena's read-only descriptor rides with the reply, and so does a
// page of lease slots when the client asks for one and the daemon offers
// them (docs/protocol.md). The peer's credentials were checked before, when
// it was accepted (Server::admit, loader/access_control.h).
//
// A function of the frame and the shared context, no state and no lock: the
// connection (loader/connection.h) sends the reply, or refuses the client
// with the error and closes.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "ipc/protocol.h"
#include "loader/connection_context.h"
#include "loader/lease_slots.h"

namespace genomed::loader {

// A HELLO accepted: the reply and what rides with it.
struct Handshake {
  ipc::HelloReply reply;
  // The client's lease-slot page (null: none asked for, or none to spare).
  std::shared_ptr<LeaseSlotPage> slot_page;
  // The arena's read-only descriptor, then the page's (-1 without one).
  std::array<int, 2> fds{-1, -1};
  // What rides with the reply's first byte: the arena's, then the page's.
  std::span<const int> pass_fds() const { return {fds.data(), slot_page ? 2u : 1u}; }
};

// Takes the first frame of connection `id` (socket `fd`, for the log line's
// peer). A frame that is not HELLO (hello_required), or one of another
// protocol version (unsupported_version), or one that does not decode, is
// refused: the error is counted (bad_requests) and logged, and the caller
// sends it and closes. Warnings about a page that could not be made pass
// `may_warn`.
Result<Handshake> accept_hello(std::string_view body, int fd, ConnectionId id,
                               const ConnectionContext& ctx, const WarnGate& may_warn);

// "pid P uid U" of the process connected at `fd`, for log lines.
std::string peer_description(int fd);

}  // namespace genomed::loader
