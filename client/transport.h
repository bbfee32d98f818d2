// The client's transport: one Unix socket to genomed, the client side of its
// framing (ipc/framing.h), and the deadline of every wait on it.
//
// A request and its reply travel as one call(); a one-way RELEASE as one
// send(). A call that runs out of time, a reply that breaks the framing and
// a lost socket each break the transport for good (broken()): a late reply
// would otherwise be taken for the next request's. A broken transport keeps
// its socket open while a lease taken over it lives (the daemon keeps the
// connection's leases, so their views stay valid), and closes it when the
// last one ends (retire()): the daemon then frees the connection at once,
// not when the Client goes.
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
#include <functional>
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
  enum Broken : int { kUsable = 0, kTimedOut, kLost, kProtocol, kInterrupted };

  // Over `fd`, a connected stream socket it owns from now on. `fork` is the
  // connection's owner: in a child of fork() nothing is sent, read or shut
  // down. `release_timeout` bounds writing one send(). `interrupted` (may be
  // empty) is asked when a signal interrupts a call()'s wait for its reply:
  // a reason abandons the call with Errc::cancelled and breaks the transport
  // as a timeout does (ClientOptions::interrupted). Writes are never
  // abandoned (each is bounded by its deadline): the check may run code
  // (Python's signal handlers, a garbage collection) that drops a lease,
  // whose RELEASE needs write_mu_, which a write holds.
  Transport(int fd, ForkGuard fork, Millis release_timeout,
            std::function<std::string()> interrupted = {});
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

  // Leases taken over this connection and not yet ended: a broken
  // transport retires its socket when the count is 0. lease_taken() is one
  // atomic increment (a locked add on x86, as a relaxed one would be),
  // sequentially consistent with break_off(): a lease taken through a slot
  // while another thread breaks the transport either keeps the socket open
  // or sees the break (usable() after it; Client::acquire asks).
  void lease_taken() { leases_.fetch_add(1); }
  void lease_ended();

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
  // stays open while a lease lives (the daemon keeps the connection's
  // leases), and is retired with the last one (at once if none lives).
  void break_off(Broken why, bool writes_too);
  // Marks the connection dead: the daemon is gone or closed it; the socket
  // is shut down, and retired with the last lease.
  Status lost(const std::string& op, const Status& why);
  // Closes the socket of a broken transport (once; nothing in a child of
  // fork()): the daemon sees the hang-up and ends the connection and its
  // leases. /dev/null takes over the descriptor number until destruction,
  // so a thread that read fd_ before (a liveness look, a send racing the
  // break) never reaches a descriptor someone else opened meanwhile.
  void retire();
  static std::string timed_out_tail();
  std::string broken_text(int why) const REQUIRES(call_mu_);

  const int fd_;                 // owned; the socket until retire(), then /dev/null
  const ForkGuard fork_;
  const Millis release_timeout_;  // bounds one send()
  const std::function<std::string()> interrupted_;  // asked at a call()'s EINTR; may be empty

  TimedMutex call_mu_;  // serializes request/reply pairs
  std::unique_ptr<ipc::FrameReader> reader_ PT_GUARDED_BY(call_mu_);  // over fd_; set once
  Millis receive_timeout_ GUARDED_BY(call_mu_){0};  // fd_'s SO_RCVTIMEO (0: none)
  // What interrupted_ answered when it stopped a call ("" until then).
  std::string interrupted_by_ GUARDED_BY(call_mu_);
  // Asks interrupted_ at an EINTR of reader_'s wait (reader_ reads under
  // call_mu_), keeping its answer in interrupted_by_.
  ipc::Interrupted stop_waiting_;

  Mutex write_mu_;  // one frame at a time on fd_

  std::atomic<int> broken_why_{kUsable};    // set once; then no request is sent
  std::atomic<bool> writes_broken_{false};  // a frame may be cut short: write nothing more
  std::atomic<std::int64_t> liveness_checked_{0};  // steady clock, ns: daemon_alive()
  std::atomic<std::int64_t> leases_{0};  // leases that keep a broken transport's socket open
  std::atomic<bool> retired_{false};     // retire() ran: fd_ is no longer the socket
};

}  // namespace genomed::client_detail
