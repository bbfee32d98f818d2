#include "client/transport.h"

#include <poll.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace genomed::client_detail {

std::string duration_text(Millis t) {
  const long long ms = t.count();
  if (ms < 1000) return std::to_string(ms) + " ms";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", static_cast<double>(ms) / 1000.0);
  return buf;
}

Deadline deadline_after(Millis timeout) {
  if (timeout >= std::chrono::duration_cast<Millis>(std::chrono::hours(24 * 365 * 100))) {
    return std::nullopt;
  }
  return ipc::Clock::now() + std::max(timeout, Millis(0));
}

Transport::Transport(int fd, ForkGuard fork, Millis release_timeout,
                     std::function<std::string()> interrupted)
    : fd_(fd),
      fork_(fork),
      release_timeout_(release_timeout),
      interrupted_(std::move(interrupted)),
      reader_(std::make_unique<ipc::FrameReader>(fd)) {
  if (interrupted_) {
    stop_waiting_ = [this]() NO_THREAD_SAFETY_ANALYSIS {  // runs inside call_locked
      std::string why = interrupted_();
      if (why.empty()) return false;
      interrupted_by_ = std::move(why);
      return true;
    };
    reader_->set_interrupted(stop_waiting_);
  }
}

Transport::~Transport() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::string> Transport::call(const ipc::Request& req, Millis timeout,
                                    std::span<const int> pass_fds) {
  return call_until(req, timeout, deadline_after(timeout), pass_fds);
}

Result<std::string> Transport::call_until(const ipc::Request& req, Millis timeout,
                                          Deadline deadline, std::span<const int> pass_fds) {
  const std::string op(ipc::op_name(req.op));
  // Before call_mu_: another thread of the parent may have held it at the fork.
  if (fork_.foreign()) return Status(Errc::not_connected, fork_.forked_text(op));
  if (!call_mu_.lock_by(deadline)) {
    return Status(Errc::timeout,
                  op + ": no reply from genomed within " + duration_text(timeout) +
                      ": another thread's request on this connection took all that time "
                      "(requests on one connection are serialized); nothing was sent and "
                      "the connection stays usable");
  }
  TimedMutexAdopt call_lock(call_mu_);
  return call_locked(req, op, timeout, deadline, pass_fds);
}

Result<std::string> Transport::call_locked(const ipc::Request& req, const std::string& op,
                                           Millis timeout, Deadline deadline,
                                           std::span<const int> pass_fds) {
  if (const int why = broken_why_.load(); why != kUsable) {
    return Status(Errc::not_connected, op + ": " + broken_text(why) + "; connect again");
  }
  Status sent = write(ipc::encode_request(req), deadline, pass_fds);
  if (!sent.ok()) {
    if (sent.code() == Errc::timeout) {
      break_off(kTimedOut, /*writes_too=*/true);  // part of the frame may be out
      return Status(Errc::timeout, op + ": genomed did not take the request within " +
                                       duration_text(timeout) + timed_out_tail());
    }
    if (writes_broken_) {  // a release timed out meanwhile
      return Status(Errc::not_connected, op + ": " + broken_text(broken_why_) + "; connect again");
    }
    return lost(op, sent);
  }
  bound_receive(deadline);
  auto reply = reader_->read(ipc::kMaxReplyFrame, deadline);
  if (!reply) {
    if (reply.code() == Errc::cancelled) {
      break_off(kInterrupted, /*writes_too=*/false);  // the request went out whole
      return Status(Errc::cancelled, op + ": interrupted by " + interrupted_by_ +
                                         " while waiting for genomed's reply" + timed_out_tail());
    }
    if (reply.code() == Errc::timeout) {
      break_off(kTimedOut, /*writes_too=*/false);
      return Status(Errc::timeout, op + ": no reply from genomed within " +
                                       duration_text(timeout) + timed_out_tail());
    }
    if (reply.code() == Errc::frame_too_large) {
      break_off(kProtocol, /*writes_too=*/false);  // the stream is out of step
      return Status(Errc::protocol_error,
                    op + ": genomed's reply breaks the protocol: " + reply.status().message());
    }
    return lost(op, reply.status());
  }
  return std::move(reply->body);
}

// Keeps SO_RCVTIMEO at the time left to `deadline` (rounded up to the
// millisecond; none without a deadline), so that the reader's first,
// blocking recvmsg cannot outlast the deadline, and a reply that comes in
// time costs one system call (FrameReader::set_blocking_first_receive).
// A call of the same kind as the last one finds it set already.
void Transport::bound_receive(Deadline deadline) {
  Millis want(0);  // 0: no timeout
  if (deadline) {
    want = std::max(Millis(1), std::chrono::ceil<Millis>(*deadline - ipc::Clock::now()));
    if (receive_timeout_.count() != 0 && receive_timeout_ <= want &&
        receive_timeout_ + Millis(10) >= want) {
      return;  // never later than the deadline; at most 10 ms early (then poll()s)
    }
  } else if (receive_timeout_.count() == 0) {
    return;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(want.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((want.count() % 1000) * 1000);
  if (::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0) {
    receive_timeout_ = want;
  } else {
    reader_->set_blocking_first_receive(false);  // poll() before every recvmsg
  }
}

void Transport::send(const ipc::Request& req) {
  if (writes_broken_ || fork_.foreign()) return;  // a child never releases its parent's leases
  const Status s = write(ipc::encode_request(req), deadline_after(release_timeout_));
  if (s.code() == Errc::timeout)
    break_off(kTimedOut, /*writes_too=*/true);
  else if (!s.ok() && !writes_broken_)  // writes_broken_: refused, not lost
    (void)lost("release", s);
}

Status Transport::send_first(const ipc::Request& req, Deadline deadline) {
  MutexLock write_lock(write_mu_);
  return ipc::write_frame(fd_, ipc::encode_request(req), -1, deadline);
}

Result<ipc::ReceivedFrame> Transport::receive_first(Deadline deadline, std::size_t max_fds) {
  call_mu_.lock();
  TimedMutexAdopt call_lock(call_mu_);
  return reader_->read(ipc::kMaxReplyFrame, deadline, max_fds);
}

void Transport::serve() {
  call_mu_.lock();
  TimedMutexAdopt call_lock(call_mu_);
  reader_->set_blocking_first_receive(true);  // see bound_receive
}

Status Transport::write(const std::string& frame, Deadline deadline,
                        std::span<const int> pass_fds) {
  MutexLock write_lock(write_mu_);
  if (writes_broken_) return Status(Errc::not_connected, "the connection is broken");
  return ipc::write_frame(fd_, frame, pass_fds, deadline);
}

std::string Transport::timed_out_tail() {
  return "; this connection is now broken (a late reply would be taken for the next "
         "one): connect again";
}

std::string Transport::broken_text(int why) const {
  switch (why) {
    case kTimedOut:
      return "this connection is broken: an earlier call on it timed out";
    case kInterrupted:
      return "this connection is broken: an earlier call on it was interrupted by " +
             interrupted_by_;
    case kProtocol:
      return "this connection is broken: genomed sent a reply that breaks the protocol";
    default:
      return "the connection to genomed was lost";
  }
}

void Transport::break_off(Broken why, bool writes_too) {
  int expected = kUsable;
  broken_why_.compare_exchange_strong(expected, why);
  if (writes_too) writes_broken_ = true;
  // Sequentially consistent with lease_ended(): of a break and a last lease
  // ending at once, at least one sees the other and retires the socket.
  if (leases_.load() == 0) retire();
}

void Transport::lease_ended() {
  if (leases_.fetch_sub(1) == 1 && broken_why_.load() != kUsable) retire();
}

void Transport::retire() {
  if (fork_.foreign() || retired_.exchange(true)) return;  // a child's close ends nothing
  writes_broken_ = true;
  ::shutdown(fd_, SHUT_RDWR);  // wakes a thread still waiting on the socket
  const int placeholder = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (placeholder >= 0) {  // else the socket stays open (shut down) until destruction
    ::dup3(placeholder, fd_, O_CLOEXEC);
    ::close(placeholder);
  }
}

Status Transport::lost(const std::string& op, const Status& why) {
  if (!fork_.foreign()) ::shutdown(fd_, SHUT_RDWR);  // shutdown would end the parent's connection
  break_off(kLost, /*writes_too=*/true);
  return Status(Errc::not_connected, op + ": lost the connection to genomed: " + why.message());
}

bool Transport::daemon_alive() {
  const auto now = ipc::Clock::now().time_since_epoch().count();
  auto last = liveness_checked_.load(std::memory_order_relaxed);
  if (now - last < std::chrono::nanoseconds(std::chrono::milliseconds(100)).count()) return true;
  if (!liveness_checked_.compare_exchange_strong(last, now, std::memory_order_relaxed))
    return true;  // another thread looks now
  pollfd p{fd_, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
    (void)lost("acquire", Status(Errc::not_connected, "the daemon closed the connection"));
    return false;
  }
  return true;
}

}  // namespace genomed::client_detail
