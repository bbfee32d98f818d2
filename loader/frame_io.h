// A connection's byte-level I/O on its non-blocking socket: request frames
// assembled from what each read brought (FrameAssembler) and replies sent
// without ever waiting, their unsent tail kept until the socket is writable
// (ReplyBuffer). Neither knows the protocol's messages nor the connection's
// state (loader/connection.h decides what a frame means and when to read or
// write); both are plain objects with no lock: the assembler is used only by
// the thread holding the connection's socket, the reply buffer only under
// the connection's mu_.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "ipc/framing.h"

namespace genomed::loader {

class FrameAssembler {
 public:
  // One recv() takes at most this much; more waiting stays in the socket and
  // is read by the next call.
  static constexpr std::size_t kReadChunk = 64 * 1024;

  // Frames whose length prefix exceeds `max_body` are refused.
  explicit FrameAssembler(std::uint32_t max_body) : max_body_(max_body) {}

  // What one read() came to.
  enum class Read {
    more,     // a full chunk: more may wait in the socket
    drained,  // a short read or nothing (EAGAIN): what comes next is a new edge
    closed,   // EOF or a socket error
  };
  // One recv() of `fd` without waiting; the bytes it brought are taken as
  // by take(), whose error (if any) is left in `*bad`.
  template <class OnFrame>
  Read read(int fd, OnFrame&& on_frame, Status* bad);

  // Takes bytes read from the stream: calls `on_frame(body)` for each
  // complete frame, in order, until it returns false (the stream cannot be
  // trusted beyond that frame: the rest is dropped). A partial frame is kept
  // for the next call. Errc::frame_too_large once a length prefix exceeds
  // the limit: that frame and everything after it are dropped.
  template <class OnFrame>
  Status take(std::string_view received, OnFrame&& on_frame);

  // Bytes of a partial frame waiting for the rest.
  std::size_t buffered() const { return in_.size(); }

 private:
  // One recv() of at most kReadChunk bytes into this thread's scratch
  // buffer (`*data`), retried on EINTR: the bytes read, 0 at EOF, -1 if
  // nothing waits (EAGAIN), -2 on a socket error.
  static long recv_chunk(int fd, char** data);

  const std::uint32_t max_body_;
  // A partial frame between reads. Frames are taken straight from the
  // receive buffer; only what is left of one is copied here.
  std::string in_;
};

class ReplyBuffer {
 public:
  // What send() did with a frame.
  enum class Sent {
    whole,    // the socket took all of it
    behind,   // queued behind a reply still going out
    partial,  // the socket took part of it (maybe nothing): the rest waits for EPOLLOUT
    failed,   // the peer is gone, or the descriptors could not ride along
  };
  // Sends one frame now, or keeps what the socket did not take. `pass_fds`
  // ride with its first byte: with a reply still waiting they could not, so
  // pass them only when empty() (HELLO's reply is the first frame).
  Sent send(int fd, std::string_view body, std::span<const int> pass_fds = {});
  // Sends what waits, as much as the socket takes. False if the peer is gone.
  bool flush(int fd);
  // No reply bytes wait for the socket.
  bool empty() const { return out_.empty(); }
  std::size_t size() const { return out_.size(); }

 private:
  std::string out_;  // framed reply bytes the socket has not taken yet
};

// ---- FrameAssembler's templates ----

template <class OnFrame>
FrameAssembler::Read FrameAssembler::read(int fd, OnFrame&& on_frame, Status* bad) {
  char* data = nullptr;
  const long n = recv_chunk(fd, &data);
  if (n < 0) return n == -1 ? Read::drained : Read::closed;
  if (n == 0) return Read::closed;
  *bad = take({data, static_cast<std::size_t>(n)}, on_frame);
  return static_cast<std::size_t>(n) < kReadChunk ? Read::drained : Read::more;
}

template <class OnFrame>
Status FrameAssembler::take(std::string_view received, OnFrame&& on_frame) {
  const bool buffered = !in_.empty();
  if (buffered) in_.append(received);
  const std::string_view bytes = buffered ? std::string_view(in_) : received;
  std::size_t used = 0;
  Status status;
  for (;;) {
    auto split = ipc::split_frame(bytes.substr(used), max_body_);
    if (!split) {
      status = split.status();
      used = bytes.size();
      break;
    }
    if (!*split) break;
    used += (*split)->consumed;
    if (!on_frame((*split)->body)) {
      used = bytes.size();  // the stream can no longer be trusted: read nothing more of it
      break;
    }
  }
  if (buffered)
    in_.erase(0, used);
  else
    in_.assign(bytes.substr(used));
  return status;
}

}  // namespace genomed::loader
