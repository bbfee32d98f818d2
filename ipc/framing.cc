#include "ipc/framing.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <span>
#include <utility>

namespace genomed::ipc {
namespace {

Status socket_error(const char* what) {
  return Status(Errc::not_connected, std::string(what) + ": " + std::strerror(errno));
}

// After EINTR: whether the caller's check abandons the wait.
bool abandon(const Interrupted* interrupted) { return interrupted && *interrupted && (*interrupted)(); }

Status interrupted_status() {
  return Status(Errc::cancelled, "the wait was interrupted by a signal");
}

// Waits until fd is readable or the deadline passes. Errc::timeout on expiry.
Status wait_readable(int fd, std::optional<Clock::time_point> deadline,
                     const Interrupted* interrupted) {
  if (!deadline) return Status::Ok();
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
    if (left.count() < 0) return Status(Errc::timeout, "no reply before the deadline");
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count() + 1, 1 << 30)));
    if (n > 0) return Status::Ok();
    if (n < 0 && errno != EINTR) return socket_error("poll");
    if (n < 0 && abandon(interrupted)) return interrupted_status();
  }
}

// Appends the descriptors of a control message to `*received`, closing
// every one beyond kMaxFdsPerFrame in all (or all of them if `received` is
// null): a surplus descriptor must never leak.
void collect_fds(msghdr& msg, std::vector<int>* received) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int got;
      std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (received != nullptr && received->size() < kMaxFdsPerFrame)
        received->push_back(got);
      else
        ::close(got);
    }
  }
}

// Keeps the first `keep` of `fds` in `*out` and closes the rest; `fds` ends empty.
void hand_over(std::vector<int>& fds, std::size_t keep, std::vector<int>* out) {
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (i < keep)
      out->push_back(fds[i]);
    else
      ::close(fds[i]);
  }
  fds.clear();
}

std::uint32_t decode_length(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
         std::uint32_t{b[3]};
}

Status too_large(std::uint32_t len, std::uint32_t max_body) {
  return Status(Errc::frame_too_large, "frame of " + std::to_string(len) +
                                           " bytes exceeds the limit of " +
                                           std::to_string(max_body));
}

// One recvmsg of up to `len` bytes into `dst` once readable (by the
// deadline), keeping descriptors that come along in `*received_fds`.
// Returns the byte count (0 at EOF); retries EINTR/EAGAIN.
// With `block_first`, the first recvmsg blocks (bounded by the socket's
// SO_RCVTIMEO, see FrameReader::set_blocking_first_receive) before any poll.
Result<std::size_t> receive_some(int fd, char* dst, std::size_t len,
                                 std::optional<Clock::time_point> deadline,
                                 std::vector<int>* received_fds, bool block_first = false,
                                 const Interrupted* interrupted = nullptr) {
  for (;;) {
    if (block_first) {
      block_first = false;
    } else if (Status s = wait_readable(fd, deadline, interrupted); !s.ok()) {
      return s;
    }
    iovec iov{dst, len};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR && abandon(interrupted)) return interrupted_status();
      if (errno == EINTR || errno == EAGAIN) continue;
      return socket_error("recvmsg");
    }
    collect_fds(msg, received_fds);
    return static_cast<std::size_t>(n);
  }
}

// Reads exactly `len` bytes into `dst`, collecting the descriptors that come along.
Status read_exact(int fd, char* dst, std::size_t len, std::optional<Clock::time_point> deadline,
                  std::vector<int>* received_fds) {
  std::size_t done = 0;
  while (done < len) {
    GENOMED_ASSIGN_OR_RETURN(const std::size_t n,
                             receive_some(fd, dst + done, len - done, deadline, received_fds));
    if (n == 0) {
      return Status(Errc::not_connected, done == 0 && len == 4
                                             ? "peer closed the connection"
                                             : "peer closed the connection mid-frame");
    }
    done += n;
  }
  return Status::Ok();
}

}  // namespace

namespace {

// A frame's four-byte big-endian length prefix.
std::array<unsigned char, 4> length_prefix(std::uint32_t len) {
  return {static_cast<unsigned char>(len >> 24), static_cast<unsigned char>(len >> 16),
          static_cast<unsigned char>(len >> 8), static_cast<unsigned char>(len)};
}

// One sendmsg of `parts` from byte `sent` on (skipping what went already),
// with `pass_fds` attached. Never raises SIGPIPE. -1 with errno set.
ssize_t send_from(int fd, std::span<const std::string_view> parts, std::size_t sent,
                  std::span<const int> pass_fds, int flags) {
  iovec iov[2];
  int count = 0;
  for (std::string_view part : parts) {
    if (sent >= part.size()) {
      sent -= part.size();
      continue;
    }
    iov[count++] = {const_cast<char*>(part.data() + sent), part.size() - sent};
    sent = 0;
  }
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<std::size_t>(count);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame)];
  if (!pass_fds.empty()) {
    const std::size_t bytes = sizeof(int) * std::min(pass_fds.size(), kMaxFdsPerFrame);
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(bytes);
    std::memcpy(CMSG_DATA(c), pass_fds.data(), bytes);
  }
  return ::sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
}

// The descriptors of a single `pass_fd` (none if it is negative).
std::span<const int> one_fd(const int& pass_fd) {
  return pass_fd >= 0 ? std::span<const int>(&pass_fd, 1) : std::span<const int>();
}

// Sends `parts` without waiting: the bytes the socket took (EAGAIN: 0).
Result<std::size_t> send_now(int fd, std::span<const std::string_view> parts,
                             std::span<const int> pass_fds) {
  std::size_t total = 0;
  for (std::string_view part : parts) total += part.size();
  std::size_t sent = 0;
  while (sent < total) {
    const ssize_t n =
        send_from(fd, parts, sent, sent == 0 ? pass_fds : std::span<const int>(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return socket_error("sendmsg");
    }
    sent += static_cast<std::size_t>(n);
  }
  return sent;
}

}  // namespace

Status write_frame(int fd, std::string_view body, int pass_fd,
                   std::optional<Clock::time_point> deadline) {
  return write_frame(fd, body, one_fd(pass_fd), deadline);
}

Status write_frame(int fd, std::string_view body, std::span<const int> pass_fds,
                   std::optional<Clock::time_point> deadline) {
  if (body.size() > 0xffffffffu) return Status(Errc::frame_too_large, "frame body over 4 GiB");
  if (pass_fds.size() > kMaxFdsPerFrame) {
    return Status(Errc::bad_request, "a frame carries at most " +
                                         std::to_string(kMaxFdsPerFrame) + " descriptors");
  }
  const auto header = length_prefix(static_cast<std::uint32_t>(body.size()));
  const std::string_view parts[2] = {{reinterpret_cast<const char*>(header.data()), header.size()},
                                     body};
  const std::size_t total = header.size() + body.size();
  std::size_t sent = 0;
  while (sent < total) {
    const ssize_t n =
        send_from(fd, parts, sent, sent == 0 ? pass_fds : std::span<const int>(),
                  deadline ? MSG_DONTWAIT : 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN && deadline) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
        if (left.count() < 0)
          return Status(Errc::timeout, "the peer did not read before the deadline");
        pollfd p{fd, POLLOUT, 0};
        (void)::poll(&p, 1, static_cast<int>(std::min<long long>(left.count() + 1, 1 << 30)));
        continue;
      }
      if (errno == EAGAIN) continue;
      return socket_error("sendmsg");
    }
    sent += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Result<std::size_t> send_frame_now(int fd, std::string_view body, int pass_fd) {
  return send_frame_now(fd, body, one_fd(pass_fd));
}

Result<std::size_t> send_frame_now(int fd, std::string_view body, std::span<const int> pass_fds) {
  if (body.size() > 0xffffffffu) return Status(Errc::frame_too_large, "frame body over 4 GiB");
  const auto header = length_prefix(static_cast<std::uint32_t>(body.size()));
  const std::string_view parts[2] = {{reinterpret_cast<const char*>(header.data()), header.size()},
                                     body};
  return send_now(fd, parts, pass_fds);
}

Result<std::size_t> send_bytes_now(int fd, std::string_view bytes, std::span<const int> pass_fds) {
  return send_now(fd, std::span<const std::string_view>(&bytes, 1), pass_fds);
}

std::string encode_frame(std::string_view body) {
  const auto header = length_prefix(static_cast<std::uint32_t>(body.size()));
  std::string frame(reinterpret_cast<const char*>(header.data()), header.size());
  frame += body;
  return frame;
}

Result<std::optional<SplitFrame>> split_frame(std::string_view bytes, std::uint32_t max_body) {
  if (bytes.size() < 4) return std::optional<SplitFrame>();
  const std::uint32_t len = decode_length(bytes.data());
  if (len > max_body) return too_large(len, max_body);
  if (bytes.size() - 4 < len) return std::optional<SplitFrame>();
  return std::optional<SplitFrame>(SplitFrame{bytes.substr(4, len), 4 + std::size_t{len}});
}

Result<ReceivedFrame> read_frame(int fd, std::uint32_t max_body,
                                 std::optional<Clock::time_point> deadline, std::size_t max_fds) {
  ReceivedFrame frame;
  std::vector<int> received;
  unsigned char header[4];
  Status s = read_exact(fd, reinterpret_cast<char*>(header), sizeof header, deadline, &received);
  if (s.ok()) {
    const std::uint32_t len = decode_length(reinterpret_cast<const char*>(header));
    if (len > max_body) {
      s = too_large(len, max_body);
    } else {
      frame.body.resize(len);
      s = read_exact(fd, frame.body.data(), len, deadline, &received);
    }
  }
  hand_over(received, s.ok() ? max_fds : 0, &frame.fds);
  if (!s.ok()) return s;
  return frame;
}

FrameReader::~FrameReader() {
  for (int fd : pending_fds_) ::close(fd);
}

Result<ReceivedFrame> FrameReader::read(std::uint32_t max_body,
                                        std::optional<Clock::time_point> deadline,
                                        std::size_t max_fds) {
  constexpr std::size_t kChunk = 64 * 1024;
  bool block_first = blocking_first_receive_ && deadline.has_value();  // the first recvmsg only
  for (;;) {
    const std::size_t avail = end_ - begin_;
    // Checks the prefix before allocating anything for the frame.
    GENOMED_ASSIGN_OR_RETURN(auto split, split_frame({buf_.data() + begin_, avail}, max_body));
    if (split) {
      ReceivedFrame frame;
      frame.body.assign(split->body);
      begin_ += split->consumed;
      if (begin_ == end_) begin_ = end_ = 0;
      hand_over(pending_fds_, max_fds, &frame.fds);
      return frame;
    }
    const std::size_t need = avail >= 4 ? 4 + std::size_t{decode_length(buf_.data() + begin_)} : 4;
    // Room for the rest of this frame, or a chunk, whichever is larger.
    if (begin_ > 0) {  // move the partial frame to the front; the buffer keeps its size
      std::memmove(buf_.data(), buf_.data() + begin_, avail);
      end_ = avail;
      begin_ = 0;
    }
    const std::size_t want = std::max(need - avail, kChunk);
    if (buf_.size() < end_ + want) buf_.resize(end_ + want);

    GENOMED_ASSIGN_OR_RETURN(const std::size_t n,
                             receive_some(fd_, buf_.data() + end_, buf_.size() - end_, deadline,
                                          &pending_fds_, std::exchange(block_first, false),
                                          &interrupted_));
    if (n == 0) {
      return Status(Errc::not_connected, avail == 0 ? "peer closed the connection"
                                                    : "peer closed the connection mid-frame");
    }
    end_ += n;
  }
}

}  // namespace genomed::ipc
