// The Unix-socket listener: accepts clients and runs each connection on its
// own thread (a blocking request loop is the shortest path for a cache hit:
// no hand-off between threads). The socket is created owner-only (0600).
//
// Threads: one accept thread plus one per connection, and the HangupWatcher's
// thread (connections whose request waits). Lock: mu_ guards the connection
// table.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "loader/connection.h"

namespace genomed::loader {

class Server {
 public:
  // Binds and listens. A socket file left by a dead daemon is replaced; one
  // a live daemon answers on is an error.
  static Result<std::unique_ptr<Server>> listen(const std::string& socket_path,
                                                ConnectionContext ctx);
  ~Server();  // stop(), then removes the socket file

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start();
  // Stops accepting; new clients are refused from now on.
  void stop_accepting();
  // Closes every connection and joins the threads. REQUIRES: the coordinator
  // was shut down first, so no connection thread is blocked inside it.
  void stop();

 private:
  Server(std::string path, int listen_fd, ConnectionContext ctx);
  void accept_loop();
  void reap_finished();

  const std::string path_;
  // Before ctx_, which points to it. Null without a coordinator.
  std::unique_ptr<HangupWatcher> watcher_;
  const ConnectionContext ctx_;
  int listen_fd_;
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};

  // State below is protected by mu_.
  std::mutex mu_;
  struct Conn {
    int fd;
    std::thread thread;
  };
  std::map<ConnectionId, Conn> conns_;
  std::vector<ConnectionId> finished_;  // threads about to return
  ConnectionId next_id_ = 1;
};

}  // namespace genomed::loader
