// One client connection, served by whichever request thread gets its epoll
// event (loader/request_threads.h): the HELLO exchange (which passes the
// read-only arena descriptor), then requests until the client leaves. No
// thread belongs to a connection and none ever blocks on its socket: reads
// and writes are non-blocking, a reply the socket does not take is kept
// until it is writable, and the limits (ConnectionLimits,
// loader/connection_context.h) are deadlines checked by the server's timer.
//
// This file is the connection's state: who holds its socket, its queue of
// requests, its deadlines and how it closes. Its parts are elsewhere: the
// bytes on the socket (frames in, replies out: loader/frame_io.h), HELLO
// (loader/handshake.h), what one request does (loader/request_dispatch.h),
// and its deadlines and idleness (loader/connection_deadlines.cc).
//
// The socket is registered edge-triggered. The request thread an event
// wakes claims the socket (reading_), reads it until drained and serves what
// came; events reported meanwhile to other threads are left to it
// (missed_events_), so nothing is lost and no epoll_ctl is needed per request.
//
// Requests are answered in the order they arrive. While one of them waits
// inside the coordinator (a load, room in the budget), the thread serving it
// lets go of the socket, so other request threads keep reading it:
//  - a RELEASE is applied at once (it has no reply), so a lease the client
//    gives back can make room for the very request that waits;
//  - other requests are queued and answered in order after it;
//  - a hang-up (EOF, EPOLLRDHUP) abandons the connection at once
//    (Coordinator::abandon): its leases end and its waiting request returns.
// A malformed frame closes this connection only; every lease it held ends
// when it closes, however it closes. What a client sends is bounded in what
// it costs the daemon (ConnectionLimits, the coordinator's lease limit) and
// in what it makes it log: warnings about a connection pass its LogLimiter,
// client strings are logged through common/safe_text.h, and what was
// refused or ignored is counted for STATS (ConnectionCounters).
//
// Lock: mu_ guards the connection's state. It is taken under the
// coordinator's lock (WaitHook::before_wait) and never held while calling
// the coordinator; the host's methods may be called under it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/mutex.h"
#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "loader/connection_context.h"
#include "loader/frame_io.h"
#include "loader/lease_slots.h"
#include "loader/log_limiter.h"

namespace genomed::loader {

// What a connection needs from the server that owns it.
class ConnectionHost {
 public:
  // Changes the descriptor's epoll events (EPOLL_CTL_MOD), which also has
  // epoll report its current readiness again.
  virtual void rearm(int fd, ConnectionId id, std::uint32_t events) = 0;
  // Have on_deadline() called at `when` (or a little after).
  virtual void schedule(ConnectionId id, ipc::Clock::time_point when) = 0;
  // A request of this thread is about to block inside the coordinator / no
  // longer blocks (so the server can keep a thread free for others).
  virtual void blocking(bool begins) = 0;
  // The connection is finished: forget it and stop watching `fd`.
  virtual void closed(ConnectionId id, int fd) = 0;

 protected:
  ~ConnectionHost() = default;
};

class Connection {
 public:
  // Takes `fd` (non-blocking), registered by the host for EPOLLIN |
  // EPOLLRDHUP; closed by the destructor, so its number is never reused
  // while anyone can still see this object.
  Connection(int fd, ConnectionId id, const ConnectionContext& ctx, ConnectionHost& host);
  ~Connection();

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  ConnectionId id() const { return id_; }
  // The events epoll registers it for first.
  static std::uint32_t initial_events();

  // An epoll event for the socket (a request thread).
  void on_event(std::uint32_t events) EXCLUDES(mu_);
  // A deadline this connection scheduled may have passed (the timer).
  void on_deadline() EXCLUDES(mu_);
  // The daemon stops: closes the connection as soon as no thread uses it.
  void shut_down() EXCLUDES(mu_);

  // When the server is full it closes the connection idle longest that
  // holds no lease to make room for a new client (Server::make_room).
  struct Idle {
    ipc::Clock::time_point since;  // its last frame or reply (or its accept)
    std::uint64_t seen = 0;        // activity_ then: evict() checks nothing came since
  };
  // Since when nothing of it has been in progress (no request read, queued
  // or running, no reply waiting to go out, not closing); nullopt while
  // something is. Leases are not looked at here (evict() does).
  std::optional<Idle> idle() const EXCLUDES(mu_);
  // Closes it if it is still idle as `seen` and holds no lease; its client
  // reads `why` (overloaded) in place of its next reply. True if closed.
  bool evict(const Idle& seen, const Status& why) EXCLUDES(mu_);

 private:
  class WaitWatch;
  // A request read and not yet answered, or an answer decided at reading
  // (an undecodable request), in arrival order.
  struct Item {
    std::optional<ipc::Request> request;
    FrameFds fds;              // a PUBLISH's descriptors (none for other requests)
    std::string reply;         // when there is no request: sent as it is ("" = none)
    bool close_after = false;  // the stream cannot be trusted beyond this item
  };

  // Handles the events of one epoll report (this thread holds the socket).
  void take_events(std::uint32_t events) EXCLUDES(mu_);
  // Reads until the socket is drained (or the queue is full) and takes the
  // complete frames. False at EOF or on a socket error.
  bool receive() EXCLUDES(mu_);
  // A length prefix past the limit: answered, then the connection closes.
  void take_bad_frame(const Status& why) EXCLUDES(mu_);
  // Takes one frame: HELLO, a RELEASE (applied now), or a request (queued).
  // False once the stream can no longer be trusted: read nothing more.
  bool take_frame(std::string_view body) EXCLUDES(mu_);
  // Whether its peer may PUBLISH (AccessControl::check_publisher), asked
  // once: SO_PEERCRED is the peer's at connect and never changes.
  bool may_publish();
  // The first frame (loader/handshake.h): replied to, or refused.
  bool take_hello(std::string_view body) EXCLUDES(mu_);
  // Stops reading; answers what came before, then `reply` (if any), then closes.
  void refuse(std::string reply) EXCLUDES(mu_);
  // The client hung up: abandons a request that runs, drops the queue.
  void hang_up() EXCLUDES(mu_);
  // Serves queued items while this thread may; then lets go of the socket
  // (if `holding_socket`, after taking events it missed) or finishes a
  // closing connection.
  void serve(bool holding_socket) EXCLUDES(mu_);
  // Runs one item; returns whether this thread still holds the socket.
  bool run(Item& item, bool holding_socket) EXCLUDES(mu_);
  // Called by WaitWatch before a request blocks, under the coordinator's lock.
  void release_socket_while_waiting(bool holding_socket) EXCLUDES(mu_);
  // Closes an idle connection unless it holds leases or woke up meanwhile
  // (`seen`: activity_ when found idle). For the idle limit (`make_room`
  // null) a connection found busy is checked again later; one closed to make
  // room is sent `*make_room` first. True: the caller calls finish().
  bool close_if_still_idle(std::uint64_t seen, const Status* make_room = nullptr) EXCLUDES(mu_);
  // Whether it is idle as in `seen` and holds no lease; if not and
  // `recheck`, the idle limit's check is scheduled again.
  bool still_idle_locked(std::uint64_t seen, bool holds, bool recheck) REQUIRES(mu_);
  // A request is read, queued, running or answered (a reply waits to go out).
  bool busy_locked() const REQUIRES(mu_);
  // Whether a warning about this client may be written now (its LogLimiter);
  // counts it as suppressed if not. When it may, `*note` is "" or says how
  // many were held back before it, to end the line with (a WarnGate).
  bool may_warn(std::string* note) EXCLUDES(mu_);

  // Sends a reply now or keeps what the socket did not take.
  // `pass_fds` ride with its first byte (HELLO: the arena, the lease slots).
  void send_locked(std::string_view body, std::span<const int> pass_fds = {}) REQUIRES(mu_);
  // The page of lease slots its client asked for in HELLO (null: none).
  std::shared_ptr<LeaseSlotPage> slot_page() const EXCLUDES(mu_);
  void flush_locked() REQUIRES(mu_);
  std::uint32_t wanted_events_locked() const REQUIRES(mu_);
  // Changes the registration when it differs from what the state wants.
  void update_interest_locked() REQUIRES(mu_);
  // Has epoll report the socket's current readiness again (EPOLL_CTL_MOD).
  void repoll_locked() REQUIRES(mu_);
  void note_activity_locked() REQUIRES(mu_);
  void close_locked() REQUIRES(mu_);
  // True once, when closing and no thread uses the connection any more:
  // the caller then calls finish() (after unlocking).
  bool finish_due_locked() REQUIRES(mu_);
  // Forgets the connection and ends its leases.
  void finish() EXCLUDES(mu_);
  void schedule_check_locked(ipc::Clock::time_point when) REQUIRES(mu_);

  const int fd_;
  const ConnectionId id_;
  const ConnectionContext& ctx_;
  ConnectionHost& host_;
  const ipc::Clock::time_point accepted_;
  // Partial frame between reads; used only by the thread holding the socket.
  FrameAssembler in_{ipc::kMaxRequestFrame};
  // may_publish()'s answer once asked; like in_, used only by the thread
  // holding the socket (take_frame).
  std::optional<bool> may_publish_;

  mutable Mutex mu_;
  bool reading_ GUARDED_BY(mu_) = false;  // a thread holds the socket: reads it, takes its events
  std::uint32_t missed_events_ GUARDED_BY(mu_) = 0;  // reported while a thread held it
  bool serving_ GUARDED_BY(mu_) = false;             // a thread runs this connection's item
  bool hello_done_ GUARDED_BY(mu_) = false;
  bool stop_reading_ GUARDED_BY(mu_) = false;  // a fatal frame was read: read no more
  bool paused_ GUARDED_BY(mu_) = false;        // not read: max_pipelined_requests wait
  bool peer_gone_ GUARDED_BY(mu_) = false;     // EOF, hang-up or socket error
  bool abandoned_ GUARDED_BY(mu_) = false;     // hung up while an item ran
  bool abandoning_ GUARDED_BY(mu_) = false;    // Coordinator::abandon() runs for it now
  bool closing_ GUARDED_BY(mu_) = false;
  bool finished_ GUARDED_BY(mu_) = false;
  std::uint32_t registered_events_ GUARDED_BY(mu_) = 0;  // as epoll has them
  std::deque<Item> queue_ GUARDED_BY(mu_);
  ReplyBuffer out_ GUARDED_BY(mu_);  // reply bytes the socket has not taken yet
  ipc::Clock::time_point out_since_ GUARDED_BY(mu_);
  ipc::Clock::time_point last_activity_ GUARDED_BY(mu_);  // the last frame or reply (or accept)
  std::uint64_t activity_ GUARDED_BY(mu_) = 0;  // frames and replies so far
  ipc::Clock::time_point check_at_ GUARDED_BY(mu_) = ipc::Clock::time_point::max();
  LogLimiter warnings_ GUARDED_BY(mu_);
  // Set at HELLO when its client asks for lease slots; then constant. The
  // coordinator holds it too while a slot of it is granted.
  std::shared_ptr<LeaseSlotPage> slot_page_ GUARDED_BY(mu_);
};

}  // namespace genomed::loader
