// Deadlines of many connections on one timerfd: a min-heap of (when, key),
// the timerfd always set to the earliest. The request thread that gets the
// timerfd's event takes the keys that are due and checks each connection,
// which schedules its next deadline itself. Entries are never removed: a
// connection whose deadline moved finds an early entry stale and ignores
// it, which keeps scheduling off the hit path (a request only records when
// it happened; nothing is pushed per request).
//
// Lock: mu_ guards the heap; it may be taken under a connection's lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <queue>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "ipc/framing.h"

namespace genomed::loader {

class DeadlineTimer {
 public:
  using Clock = ipc::Clock;

  DeadlineTimer() = default;
  ~DeadlineTimer();
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

  Status open();
  // Readable once the earliest deadline passed (register it for EPOLLIN).
  int fd() const { return fd_; }

  void schedule(Clock::time_point when, std::uint64_t key) EXCLUDES(mu_);
  // Clears the timerfd and returns the keys whose time has come, setting
  // the timerfd for the next one.
  std::vector<std::uint64_t> take_due() EXCLUDES(mu_);

 private:
  void set_locked(Clock::time_point when) REQUIRES(mu_);

  int fd_ = -1;
  using Entry = std::pair<Clock::time_point, std::uint64_t>;
  Mutex mu_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_ GUARDED_BY(mu_);
  Clock::time_point set_for_ GUARDED_BY(mu_) = Clock::time_point::max();
};

}  // namespace genomed::loader
