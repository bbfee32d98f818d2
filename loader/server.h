// The Unix-socket server: the listening socket, the connection table and
// the request threads that serve both (loader/request_threads.h). Any
// request thread accepts clients, reads and answers requests, and checks
// connection deadlines (one timerfd); none belongs to a connection, so idle
// clients cost a descriptor and a little memory, no thread. The socket is
// created owner-only (0600), then given --socket-mode and --socket-group
// (loader/access_control.h).
//
// At --max-connections a new client takes the place of the connection that
// has been idle longest and holds no lease (it is told `overloaded`), chosen
// among its own uid's connections and those of uids holding more
// connections than its uid: one process, whatever its uid, cannot keep
// clients out by holding every connection idle, and a uid that holds its
// fair share keeps it (make_room). Only when no such connection exists is
// the new client refused with `overloaded`. Connections holding leases are
// never closed, so one uid may hold at most --max-connections-per-uid: past
// it a new client of that uid only takes the place of one of its own.
//
// Lock: mu_ guards the connection table; listen_mu_ the listening socket
// (accepting vs. stop_accepting). Neither is held while calling a
// connection or the coordinator.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "common/mutex.h"
#include "common/status.h"
#include "loader/connection.h"
#include "loader/deadline_timer.h"
#include "loader/request_threads.h"

namespace genomed::loader {

class Server final : private ConnectionHost {
 public:
  // Binds and listens. A socket file left by a dead daemon is replaced; one
  // a live daemon answers on is an error.
  static Result<std::unique_ptr<Server>> listen(const std::string& socket_path,
                                                ConnectionContext ctx);
  // Serves on a listening socket it was given (systemd socket activation);
  // the socket file is its owner's: never removed.
  static Result<std::unique_ptr<Server>> adopt(int listen_fd, ConnectionContext ctx);
  ~Server();  // stop(), then removes the socket file (unless adopted)

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts the request threads; clients are served from now on.
  Status start();
  // Stops accepting; new clients are refused from now on.
  void stop_accepting() EXCLUDES(listen_mu_);
  // Closes every connection and joins the threads. REQUIRES: the coordinator
  // was shut down first, so no request is blocked inside it for long.
  void stop() EXCLUDES(mu_);

 private:
  Server(std::string path, int listen_fd, ConnectionContext ctx);
  void on_event(std::uint64_t key, std::uint32_t events);
  void accept_clients() EXCLUDES(listen_mu_, mu_);
  // Registers a new client, or refuses it past --max-connections or past
  // its uid's --max-connections-per-uid.
  // REQUIRES: listen_mu_ (admissions are one at a time).
  void admit(int fd) EXCLUDES(mu_);
  // Closes one idle connection that holds no lease, for a new client of
  // `uid` (see above), with `own_uid_only` one of `uid`'s; false if none
  // may be closed.
  bool make_room(uid_t uid, bool own_uid_only) EXCLUDES(mu_);
  void deadlines_due();
  std::shared_ptr<Connection> find(ConnectionId id) const EXCLUDES(mu_);

  // ConnectionHost
  void rearm(int fd, ConnectionId id, std::uint32_t events) override;
  void schedule(ConnectionId id, ipc::Clock::time_point when) override;
  void blocking(bool begins) override;
  void closed(ConnectionId id, int fd) override EXCLUDES(mu_);

  const std::string path_;
  const ConnectionContext ctx_;
  DeadlineTimer timer_;
  RequestThreads threads_;  // after everything its handler uses

  Mutex listen_mu_;
  int listen_fd_ GUARDED_BY(listen_mu_);
  // Given up for a moment to accept (and refuse) a client when the daemon
  // is out of descriptors; a listening socket that stays readable would
  // otherwise wake the request threads in a loop.
  int spare_fd_ GUARDED_BY(listen_mu_) = -1;

  mutable Mutex mu_;
  struct Entry {
    std::shared_ptr<Connection> conn;
    uid_t uid;  // its peer's, as of its connect()
  };
  std::unordered_map<ConnectionId, Entry> conns_ GUARDED_BY(mu_);
  ConnectionId next_id_ GUARDED_BY(mu_);
};

}  // namespace genomed::loader
