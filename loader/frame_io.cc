#include "loader/frame_io.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace genomed::loader {

long FrameAssembler::recv_chunk(int fd, char** data, FrameFds* fds) {
  thread_local char scratch[kReadChunk];
  iovec iov{scratch, sizeof scratch};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * ipc::kMaxFdsPerFrame)];
  msghdr msg{};
  ssize_t n;
  do {
    msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN ? -1 : -2;
  // Owned at once, whatever happens next: never leaked.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int got = -1;
      std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->fds.emplace_back(got);
    }
  }
  // MSG_CTRUNC: the kernel closed descriptors that did not fit.
  if ((msg.msg_flags & MSG_CTRUNC) != 0) fds->truncated = true;
  *data = scratch;
  return static_cast<long>(n);
}

void FrameAssembler::keep_fds(std::uint64_t at, FrameFds fds) {
  if (fd_batches_.size() >= kMaxFdBatches) {
    // Closed now: a frame they belonged to learns it from `truncated`.
    fd_batches_.back().fds.truncated = true;
    return;
  }
  fd_batches_.push_back({at, std::move(fds)});
}

void FrameAssembler::claim_fds(std::uint64_t begin, std::uint64_t end) {
  while (!fd_batches_.empty() && fd_batches_.front().at < end) {
    FdBatch batch = std::move(fd_batches_.front());
    fd_batches_.pop_front();
    if (batch.at < begin) continue;  // no frame of theirs: closed
    for (Fd& f : batch.fds.fds) frame_fds_.fds.push_back(std::move(f));
    frame_fds_.truncated = frame_fds_.truncated || batch.fds.truncated;
  }
}

ReplyBuffer::Sent ReplyBuffer::send(int fd, std::string_view body, std::span<const int> pass_fds) {
  if (!out_.empty()) {  // behind a reply still going out
    out_ += ipc::encode_frame(body);
    return Sent::behind;
  }
  auto sent = ipc::send_frame_now(fd, body, pass_fds);
  if (!sent || (!pass_fds.empty() && *sent == 0)) return Sent::failed;
  if (*sent == 4 + body.size()) return Sent::whole;  // the usual case
  out_ = ipc::encode_frame(body).substr(*sent);
  return Sent::partial;
}

bool ReplyBuffer::flush(int fd) {
  if (out_.empty()) return true;
  auto sent = ipc::send_bytes_now(fd, out_);
  if (!sent) return false;
  out_.erase(0, *sent);
  return true;
}

}  // namespace genomed::loader
