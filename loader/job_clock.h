// A job's deadline as the pool's slot thread spends it, on the pool's
// WaitClock (loader/pool.h). Used by one slot thread at a time; no lock.
#pragma once

#include <poll.h>

#include <algorithm>
#include <chrono>

#include "common/wait_clock.h"

namespace genomed::loader {

using Clock = std::chrono::steady_clock;

// How long a slot waits on its worker between two looks at the clock.
constexpr Clock::duration kWatchSlice = std::chrono::milliseconds(100);

// A job's budget as its slot spends it, on the pool's clock. Time in which
// genomed itself did not run is not charged because that clock stands still
// then (genomed passes a RunClock, common/run_clock.h): the pool does not
// detect pauses itself. The slot never waits longer than kWatchSlice in one
// go, so a hung worker is stopped within a slice of its deadline.
class JobClock {
 public:
  JobClock(WaitClock& clock, Clock::time_point deadline)
      : clock_(clock), last_(clock.now()), left_(deadline - last_) {}

  // Charges the time since the previous look.
  void look() {
    const Clock::time_point now = clock_.now();
    left_ -= now - last_;
    last_ = now;
  }
  bool expired() const { return left_ <= Clock::duration::zero(); }
  // Polls `fds` for the next wait: the rest of the budget, at most one
  // slice, from the last look. Returns as WaitClock::poll.
  int wait(pollfd* fds, nfds_t n) {
    return clock_.poll(fds, n, last_ + std::clamp(left_, Clock::duration::zero(), kWatchSlice));
  }

 private:
  WaitClock& clock_;
  Clock::time_point last_;
  Clock::duration left_;
};

}  // namespace genomed::loader
