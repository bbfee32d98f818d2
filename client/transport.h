// The client's transport: one Unix socket to genomed, the client side of its
// framing (ipc/framing.h), and the deadline of every wait on it.
//
// A request and its reply travel as one call(); a one-way RELEASE as one
// send(). A call that runs out of time, a reply that breaks the framing and
// a lost socket each break the transport for good (broken()): a late reply
// would otherwise be taken for the next request's. The socket stays open
// until the Transport is destroyed, so the daemon keeps the connection's
// leases meanwhile, and a thread still using it never touches a reused
// descriptor number.
//
// Locks, in order: call_mu_ before write_mu_. A request holds call_mu_
// until its reply arrives; a release (one-way) needs only write_mu_, held
// for one frame write, so it never waits behind another thread's pending
// request. Every wait is bounded by the call's deadline: for call_mu_ (a
// timed mutex), for room in the socket (write_frame's poll), for the reply
// (a first recvmsg bounded by SO_RCVTIMEO, then FrameReader's poll);
// write_mu_ is held for one frame write at most, itself bounded.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "client/fork_guard.h"
#include "client/timed_mutex.h"
#include "common/mutex.h"
#include "genomed/result.h"
#include "ipc/framing.h"
#include "ipc/protocol.h"

namespace genomed::client_detail {

using Millis = std::chrono::milliseconds;
using Deadline = std::optional<ipc::Clock::time_point>;

// "5 s", "250 ms", "1.5 s": a timeout as the messages show it.
std::string duration_text(Millis t);

// When a call of `timeout` started now must end; nullopt for kNoTimeout (or
// one too far away to add to the clock).
Deadline deadline_after(Millis timeout);

class Transport {
 public:
  // Why a broken transport refuses requests (broken_why()).
  enum Broken : int { kUsable = 0, kTimedOut, kLost, kProtocol };

  // Over `fd`, a connected stream socket it owns from now on. `fork` is the
  // connection's owner: in a child of fork() nothing is sent, read or shut
  // down. `release_timeout` bounds writing one send().
  Transport(int fd, ForkGuard fork, Millis release_timeout);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  int fd() const { return fd_; }

  // One request, one reply, within `timeout`. REQUIRES: the op has a reply.
  // `pass_fds` (at most ipc::kMaxFdsPerFrame) ride with the request's frame.
  Result<std::string> call(const ipc::Request& req, Millis timeout,
                           std::span<const int> pass_fds = {}) EXCLUDES(call_mu_, write_mu_);
  // The same by a `deadline` that may have started earlier (a call of
  // several round trips: LIST's pages); `timeout` is the call's, for messages.
  Result<std::string> call_until(const ipc::Request& req, Millis timeout, Deadline deadline,
                                 std::span<const int> pass_fds = {})
      EXCLUDES(call_mu_, write_mu_);

  // One-way message (RELEASE). Best effort: a closed connection has released
  // everything already, and one whose writes broke releases everything when
  // its socket closes.
  void send(const ipc::Request& req) EXCLUDES(write_mu_);

  // The HELLO exchange (connect.cc), before the transport is shared: one
  // frame out, one frame back with up to `max_fds` descriptors, no
  // bookkeeping of broken state. serve() then turns on the request path's
  // one-system-call receive (see bound_receive).
  Status send_first(const ipc::Request& req, Deadline deadline) EXCLUDES(write_mu_);
  Result<ipc::ReceivedFrame> receive_first(Deadline deadline, std::size_t max_fds)
      EXCLUDES(call_mu_);
  void serve() EXCLUDES(call_mu_);

  // Whether the daemon is still there, looked at most every 100 ms: slot
  // leases send nothing, so without this a client of a daemon that died
  // (SIGKILL, the OOM killer) would go on serving leases on a dead arena.
  // A hang-up breaks the transport: the next request asks and fails.
  bool daemon_alive();

  // kUsable until a call timed out, a reply broke the protocol or the
  // connection was lost; then that reason for good.
  int broken_why() const { return broken_why_.load(); }
  bool usable() const { return broken_why() == kUsable; }
  const ForkGuard& fork() const { return fork_; }

 private:
  Result<std::string> call_locked(const ipc::Request& req, const std::string& op, Millis timeout,
                                  Deadline deadline, std::span<const int> pass_fds)
      REQUIRES(call_mu_) EXCLUDES(write_mu_);
  void bound_receive(Deadline deadline) REQUIRES(call_mu_);
  Status write(const std::string& frame, Deadline deadline, std::span<const int> pass_fds = {})
      EXCLUDES(write_mu_);
  // Refuses further requests (and, with `writes_too`, writes). The socket
  // stays open, so the daemon keeps this connection's leases until the
  // Transport is destroyed.
  void break_off(Broken why, bool writes_too);
  // Marks the connection dead: the daemon is gone or closed it. The
  // descriptor stays open (shut down) until the Transport is destroyed.
  Status lost(const std::string& op, const Status& why);
  static std::string timed_out_tail();
  static std::string broken_text(int why);

  const int fd_;                 // owned; open until destruction
  const ForkGuard fork_;
  const Millis release_timeout_;  // bounds one send()

  TimedMutex call_mu_;  // serializes request/reply pairs
  std::unique_ptr<ipc::FrameReader> reader_ PT_GUARDED_BY(call_mu_);  // over fd_; set once
  Millis receive_timeout_ GUARDED_BY(call_mu_){0};  // fd_'s SO_RCVTIMEO (0: none)

  Mutex write_mu_;  // one frame at a time on fd_

  std::atomic<int> broken_why_{kUsable};    // set once; then no request is sent
  std::atomic<bool> writes_broken_{false};  // a frame may be cut short: write nothing more
  std::atomic<std::int64_t> liveness_checked_{0};  // steady clock, ns: daemon_alive()
};

}  // namespace genomed::client_detail
