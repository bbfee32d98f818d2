// Watches the sockets of connections whose request is waiting inside the
// coordinator (nobody reads them meanwhile: their thread is blocked), and
// abandon()s a connection whose client hangs up, so its leases end at once
// rather than when the request ends. One thread for the whole daemon.
//
// Only a hang-up counts (POLLRDHUP, POLLHUP, POLLERR): a client that
// pipelines a RELEASE behind its ACQUIRE makes the socket readable, which is
// not a hang-up. A connection is watched only from WaitHook::before_wait()
// until its request returns, so the cache-hit path costs nothing.
//
// Lock order: the coordinator's mutex before this one (watch() is called
// under it); this one is never held while calling into the coordinator.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "loader/coordinator.h"

namespace genomed::loader {

class HangupWatcher {
 public:
  explicit HangupWatcher(Coordinator& coordinator);
  ~HangupWatcher();  // stop()

  HangupWatcher(const HangupWatcher&) = delete;
  HangupWatcher& operator=(const HangupWatcher&) = delete;

  // Watches `fd` of connection `id` until unwatch(id).
  void watch(int fd, ConnectionId id);
  // Stops watching `id`; true if its client hung up (it was abandoned).
  // Never returns while abandon(id) runs, and none runs after it returns.
  bool unwatch(ConnectionId id);
  // Ends the thread; watch() is a no-op after it.
  void stop();

 private:
  void run();

  Coordinator& coordinator_;
  int wake_fd_ = -1;  // eventfd: the watched set changed, or stop()
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable abandon_done_;
  struct Watched {
    int fd = -1;
    bool hung_up = false;
  };
  std::map<ConnectionId, Watched> watched_;
  ConnectionId abandoning_ = 0;  // abandon() runs for it now (0: none)
  bool stopping_ = false;
};

}  // namespace genomed::loader
