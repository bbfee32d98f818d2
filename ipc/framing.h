// Length-prefixed frames over a SOCK_STREAM Unix socket: a u32 big-endian body
// length, then the body (one msgpack map). Descriptors may ride along with a
// frame (SCM_RIGHTS, attached to its first byte): the arena descriptor with
// the HELLO reply, an adapter's two open files with a worker's job. Used
// between clients and the daemon and between the supervisor and its workers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace genomed::ipc {

using Clock = std::chrono::steady_clock;

// Frames a client may send to the daemon. Requests are small; a hostile
// length prefix larger than this closes the connection before any allocation.
inline constexpr std::uint32_t kMaxRequestFrame = 64 * 1024;
// Frames the daemon or a worker may send back (list/probe replies with large
// tensor tables).
inline constexpr std::uint32_t kMaxReplyFrame = 16 * 1024 * 1024;
// Descriptors one frame may carry (and a reader can take with it).
inline constexpr std::size_t kMaxFdsPerFrame = 4;

// Asked when a FrameReader's wait is interrupted by a signal (EINTR): true
// abandons the read with Errc::cancelled (the stream is then out of sync,
// as after a timeout); false (or none) goes on waiting. Lets a caller's
// signal handler end a wait early (the Python binding raises
// KeyboardInterrupt this way); costs nothing until a signal arrives.
using Interrupted = std::function<bool()>;

// Writes one frame with a single sendmsg (header and body in one iovec pair),
// retrying on short writes and EINTR. `pass_fd` >= 0 is attached to the first
// byte. Never raises SIGPIPE. Errc::not_connected if the peer is gone.
// With a `deadline`, waits for room in the socket buffer only until then
// (Errc::timeout; the stream is then out of sync and must be closed).
Status write_frame(int fd, std::string_view body, int pass_fd = -1,
                   std::optional<Clock::time_point> deadline = std::nullopt);
// The same with several descriptors (at most kMaxFdsPerFrame; more is
// Errc::bad_request, nothing sent).
Status write_frame(int fd, std::string_view body, std::span<const int> pass_fds,
                   std::optional<Clock::time_point> deadline = std::nullopt);

// Sends as much of one frame as the socket takes right now, never waiting:
// the number of bytes sent (0 .. 4 + body size), the rest is the caller's to
// send later (event loops keep it until the socket is writable). `pass_fd`
// >= 0 rides with the first byte. Errc::not_connected if the peer is gone.
Result<std::size_t> send_frame_now(int fd, std::string_view body, int pass_fd = -1);
// The same with several descriptors (at most kMaxFdsPerFrame).
Result<std::size_t> send_frame_now(int fd, std::string_view body, std::span<const int> pass_fds);
// The same for bytes that are already framed (a reply's unsent tail, or a
// whole frame). `pass_fds` (at most kMaxFdsPerFrame) ride with the first
// byte sent: pass them only with a frame's first byte.
Result<std::size_t> send_bytes_now(int fd, std::string_view bytes,
                                   std::span<const int> pass_fds = {});

// A frame as it goes on the wire: the length prefix, then `body`.
std::string encode_frame(std::string_view body);

// One complete frame at the front of a stream's unread bytes.
struct SplitFrame {
  std::string_view body;
  std::size_t consumed = 0;  // prefix + body
};
// The first frame in `bytes`; nullopt while it is incomplete.
// Errc::frame_too_large as soon as its prefix exceeds `max_body`.
Result<std::optional<SplitFrame>> split_frame(std::string_view bytes, std::uint32_t max_body);

struct ReceivedFrame {
  std::string body;
  std::vector<int> fds;  // descriptors that came with the frame, in order (owned by the caller)
};

// Reads one frame. Errors: Errc::not_connected on EOF or a socket error (the
// message says which), Errc::frame_too_large if the prefix exceeds
// `max_body`, Errc::timeout if `deadline` passes first (the stream is then
// out of sync and must be closed). The first `max_fds` descriptors arriving
// with the frame are returned with O_CLOEXEC set; any others (and all of
// them on an error) are closed, never leaked.
Result<ReceivedFrame> read_frame(int fd, std::uint32_t max_body,
                                 std::optional<Clock::time_point> deadline = std::nullopt,
                                 std::size_t max_fds = 0);

// A buffered reader for one stream: one recvmsg takes in as many bytes as
// are waiting (up to 64 KiB, or what the current frame needs), and frames
// already buffered are returned without a system call. On the hit path this
// halves the reads (a length prefix and its body, or a RELEASE followed by
// the next ACQUIRE, arrive in one call). Same errors as read_frame(). A
// descriptor is attached to the next frame completed after it arrived: exact
// when the peer sends it with a frame it waits for an answer to, as the
// daemon's HELLO reply is. After an error the reader must not be used again.
class FrameReader {
 public:
  explicit FrameReader(int fd) : fd_(fd) {}
  ~FrameReader();
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  Result<ReceivedFrame> read(std::uint32_t max_body,
                             std::optional<Clock::time_point> deadline = std::nullopt,
                             std::size_t max_fds = 0);

  // Off by default. On: the first recvmsg of a read() with a deadline blocks
  // instead of poll()ing first, saving a system call per reply that comes in
  // time (the client's request/reply path). Only for a blocking socket whose
  // SO_RCVTIMEO the caller keeps no longer than the time left to the
  // deadline (plus the lateness it accepts): the socket's timeout (EAGAIN)
  // then hands over to the usual poll() and deadline check.
  void set_blocking_first_receive(bool on) { blocking_first_receive_ = on; }

  // Asked at every EINTR of a read() (see Interrupted); none by default.
  void set_interrupted(Interrupted check) { interrupted_ = std::move(check); }

 private:
  int fd_;
  std::string buf_;  // received bytes live in [begin_, end_)
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::vector<int> pending_fds_;  // descriptors received and not yet returned
  bool blocking_first_receive_ = false;
  Interrupted interrupted_;  // empty: EINTR only retries
};

}  // namespace genomed::ipc
