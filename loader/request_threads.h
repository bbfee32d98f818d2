// The daemon's request threads: a small set of threads that all wait in
// epoll_wait on one epoll set (the listening socket, every connection, the
// deadline timer) and serve the event they get themselves. The thread woken
// is the one that serves: a cache hit is read and answered on one thread,
// with no hand-off. How a descriptor is registered is its owner's choice:
// the listener and the timer one-shot (re-armed when done), connections
// edge-triggered with an owner claim (loader/connection.h), which spares a
// re-arming epoll_ctl per request.
//
// Sizing. `base` threads live for the daemon's lifetime (enough to keep the
// cores busy with cache hits). A request that blocks inside the coordinator
// (waiting for a load or for room) holds its thread, so when every thread is
// blocked one more is started, up to `max`; a thread beyond `base` that
// finds nothing to do for `idle_exit` ends. Idle connections cost no thread.
//
// Lock: mu_ guards the thread table and the counts. blocking_begins() is
// called under the coordinator's lock (WaitHook::before_wait), so the order
// is the coordinator's mutex before mu_; the handler is never called with
// mu_ held.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"

namespace genomed::loader {

struct RequestThreadOptions {
  int base = 2;  // always running
  int max = 64;  // never more, however many requests block
  std::chrono::milliseconds idle_exit{2'000};
};

class RequestThreads {
 public:
  // Called on a request thread for each event: the key given at add(), and
  // the epoll event mask. The descriptor is disarmed until rearm().
  using Handler = std::function<void(std::uint64_t key, std::uint32_t events)>;

  RequestThreads(RequestThreadOptions options, Handler handler);
  ~RequestThreads();  // stop()

  RequestThreads(const RequestThreads&) = delete;
  RequestThreads& operator=(const RequestThreads&) = delete;

  // Creates the epoll set and starts the base threads.
  Status start();

  // Registers `fd` for `events` (epoll flags included: EPOLLONESHOT, EPOLLET).
  Status add(int fd, std::uint64_t key, std::uint32_t events);
  // EPOLL_CTL_MOD: re-arms a one-shot descriptor, or changes the events of
  // another; either way a descriptor already ready is reported again.
  void rearm(int fd, std::uint64_t key, std::uint32_t events);
  void remove(int fd);

  // The calling request thread is about to block / no longer blocks. When
  // every thread blocks, one more starts (below `max`).
  void blocking_begins() EXCLUDES(mu_);
  void blocking_ends() EXCLUDES(mu_);

  // Wakes every thread and joins them; each finishes the event it serves.
  void stop() EXCLUDES(mu_);

  // Threads running now (for tests and logs).
  int threads() const EXCLUDES(mu_);

 private:
  void run(std::uint64_t index);
  void spawn_locked() REQUIRES(mu_);
  void join_finished_locked() REQUIRES(mu_);

  const RequestThreadOptions options_;
  const Handler handler_;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;  // eventfd, level-triggered and never read: wakes every thread

  mutable Mutex mu_;
  std::map<std::uint64_t, std::thread> threads_ GUARDED_BY(mu_);
  std::vector<std::uint64_t> finished_ GUARDED_BY(mu_);  // about to return, to be joined
  std::uint64_t next_index_ GUARDED_BY(mu_) = 0;
  int live_ GUARDED_BY(mu_) = 0;     // started and not finished
  int blocked_ GUARDED_BY(mu_) = 0;  // inside a blocking request
  bool warned_at_max_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  // live_ > base, read without the lock to pick epoll_wait's timeout.
  std::atomic<bool> above_base_{false};
};

}  // namespace genomed::loader
