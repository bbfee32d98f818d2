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
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fd.h"
#include "common/status.h"
#include "ipc/framing.h"

namespace genomed::loader {

// Descriptors a client sent with a frame (SCM_RIGHTS): only PUBLISH takes
// them (loader/published_adapter.h); any other frame's are closed.
struct FrameFds {
  std::vector<Fd> fds;
  // More came than a read can take (ipc::kMaxFdsPerFrame), or more batches
  // waited than a connection may hold: the kernel or the assembler closed
  // the rest, so `fds` is not what the client sent.
  bool truncated = false;
};

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

  // Within on_frame: the descriptors that came with the frame it is given
  // (what is not taken is closed once on_frame returns). A client sends
  // them with the frame's first bytes; the kernel hands them to the read
  // that ends inside the skb they ride with (it stops a read after such an
  // skb), so they belong to the frame holding that read's last byte.
  FrameFds take_frame_fds() { return std::exchange(frame_fds_, {}); }

 private:
  // One recvmsg() of at most kReadChunk bytes into this thread's scratch
  // buffer (`*data`), retried on EINTR: the bytes read, 0 at EOF, -1 if
  // nothing waits (EAGAIN), -2 on a socket error. Descriptors that came
  // with them (O_CLOEXEC) go to `*fds`.
  static long recv_chunk(int fd, char** data, FrameFds* fds);
  // Descriptors read with the chunk whose last byte is at stream offset
  // `at`, kept until the frame holding that byte is complete.
  void keep_fds(std::uint64_t at, FrameFds fds);
  // Moves into frame_fds_ the batches received inside [begin, end) of the
  // stream, closing those before it (they belonged to no frame).
  void claim_fds(std::uint64_t begin, std::uint64_t end);

  struct FdBatch {
    std::uint64_t at = 0;
    FrameFds fds;
  };
  // Batches a connection may hold for frames not yet complete: with the
  // per-read cap, at most kMaxFdsPerFrame descriptors, however many
  // connections a client opens. A client sends one PUBLISH at a time (its
  // descriptors come with one frame), so one batch is all it needs.
  static constexpr std::size_t kMaxFdBatches = 1;

  const std::uint32_t max_body_;
  // A partial frame between reads. Frames are taken straight from the
  // receive buffer; only what is left of one is copied here.
  std::string in_;
  std::uint64_t stream_pos_ = 0;  // stream offset of the first byte not yet framed
  std::deque<FdBatch> fd_batches_;  // oldest first; at most kMaxFdBatches
  FrameFds frame_fds_;  // the current frame's, during on_frame
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
  FrameFds fds;
  const long n = recv_chunk(fd, &data, &fds);
  if (n < 0) return n == -1 ? Read::drained : Read::closed;
  if (n == 0) return Read::closed;
  if (!fds.fds.empty() || fds.truncated) {
    keep_fds(stream_pos_ + in_.size() + static_cast<std::uint64_t>(n) - 1, std::move(fds));
  }
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
    if (!fd_batches_.empty()) claim_fds(stream_pos_ + used, stream_pos_ + used + (*split)->consumed);
    used += (*split)->consumed;
    const bool go_on = on_frame((*split)->body);
    frame_fds_ = {};  // closes what the frame did not take
    if (!go_on) {
      used = bytes.size();  // the stream can no longer be trusted: read nothing more of it
      fd_batches_.clear();
      break;
    }
  }
  stream_pos_ += used;
  if (buffered)
    in_.erase(0, used);
  else
    in_.assign(bytes.substr(used));
  return status;
}

}  // namespace genomed::loader
