// Length-prefixed frames over a SOCK_STREAM Unix socket: a u32 big-endian body
// length, then the body (one msgpack map). Optionally one file descriptor
// rides along with a frame (SCM_RIGHTS), as the arena descriptor does with
// the HELLO reply. Used between clients and the daemon and between the
// supervisor and its workers.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace genomed::ipc {

using Clock = std::chrono::steady_clock;

// Frames a client may send to the daemon. Requests are small; a hostile
// length prefix larger than this closes the connection before any allocation.
inline constexpr std::uint32_t kMaxRequestFrame = 64 * 1024;
// Frames the daemon or a worker may send back (list/probe replies with large
// tensor tables).
inline constexpr std::uint32_t kMaxReplyFrame = 16 * 1024 * 1024;

// Writes one frame with a single sendmsg (header and body in one iovec pair),
// retrying on short writes and EINTR. `pass_fd` >= 0 is attached to the first
// byte. Never raises SIGPIPE. Errc::not_connected if the peer is gone.
Status write_frame(int fd, std::string_view body, int pass_fd = -1);

struct ReceivedFrame {
  std::string body;
  int fd = -1;  // a descriptor that came with the frame (owned by the caller), or -1
};

// Reads one frame. Errors: Errc::not_connected on EOF or a socket error (the
// message says which), Errc::frame_too_large if the prefix exceeds
// `max_body`, Errc::timeout if `deadline` passes first (the stream is then
// out of sync and must be closed). Descriptors arriving with the frame are
// returned (or closed if `accept_fd` is false) with O_CLOEXEC set.
Result<ReceivedFrame> read_frame(int fd, std::uint32_t max_body,
                                 std::optional<Clock::time_point> deadline = std::nullopt,
                                 bool accept_fd = false);

}  // namespace genomed::ipc
