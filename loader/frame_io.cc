#include "loader/frame_io.h"

#include <sys/socket.h>

#include <cerrno>

namespace genomed::loader {

long FrameAssembler::recv_chunk(int fd, char** data) {
  thread_local char scratch[kReadChunk];
  ssize_t n;
  do {
    n = ::recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN ? -1 : -2;
  *data = scratch;
  return static_cast<long>(n);
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
